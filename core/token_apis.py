"""``/tokens``: a user's API tokens (a maintainer's view: everyone's), a new one, and revoking one."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from .tokens import token_create, token_revoke, tokens_visible

# A token's first characters, as the list shows them: enough to tell one's own tokens apart, far from the secret.
PREFIX_LENGTH = 8


class TokenSerializer(serializers.Serializer):
    # The digest (knox's primary key): no use to anyone who has not got the token itself.
    id = serializers.CharField(source="digest")
    prefix = serializers.SerializerMethodField()
    user = serializers.CharField(source="user.get_username")
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True)
    expired = serializers.SerializerMethodField()

    def get_prefix(self, token) -> str:
        return token.token_key[:PREFIX_LENGTH]

    def get_expired(self, token) -> bool:
        return token.expiry is not None and token.expiry <= timezone.now()


class TokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Any signed-in user manages their own tokens; maintainers everyone's."""

    serializer_class = TokenSerializer
    lookup_value_regex = "[0-9a-f]{1,128}"

    def get_queryset(self):
        return tokens_visible(user=self.request.user, owner=self.request.query_params.get("user") or None)

    @extend_schema(
        parameters=[OpenApiParameter("user", description="Maintainers: one user's tokens (default everyone's).")],
        description="Your tokens (maintainers: everyone's): prefix, owner, created, expiry; never the token.",
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=None,
        responses={
            201: inline_serializer("NewToken", {"token": serializers.CharField(), "id": serializers.CharField()})
        },
        description="A new token for you, expiring after `MDS_TOKEN_TTL_DAYS`. Its value is shown this once.",
    )
    def create(self, request):
        row, key = token_create(user=request.user)
        return Response({"token": key, **TokenSerializer(row).data}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None}, description="Revoke a token (refused within seconds).")
    def destroy(self, request, pk: str):
        token_revoke(user=request.user, token_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
