"""``/models/``: read-only listings of the registry mirror, moving aliases (promotion), and models' owners.

Listings come from the mirror, not from MLflow, so they cost one database query and reflect the last sync.
``?include_deleted=true`` also lists what was deleted in MLflow. Moving an alias goes to MLflow first.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import requires

from . import selectors
from .serializers import (
    AliasMoveSerializer,
    AliasSetSerializer,
    ModelAccessSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    RegisteredModelSerializer,
)
from .services import model_access_set, model_alias_remove, model_alias_set

CanReadModels = requires("registry_mirror.view_registeredmodel", "registry_mirror.view_modelversion")
CanSetAlias = requires("registry_mirror.set_alias")
CanShareModels = requires("registry_mirror.share_model")


def _include_deleted(request) -> bool:
    return request.query_params.get("include_deleted", "").lower() in ("1", "true", "yes")


class RegisteredModelViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RegisteredModelSerializer
    permission_classes = [CanReadModels]
    lookup_field = "name"

    def get_queryset(self):
        return selectors.registered_model_list(include_deleted=_include_deleted(self.request)).prefetch_related(
            "shared_with"
        )


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ModelVersionSerializer
    permission_classes = [CanReadModels]
    lookup_field = "version"

    def get_queryset(self):
        name = self.kwargs["name"]
        include_deleted = _include_deleted(self.request) or self.action == "retrieve"
        get_object_or_404(selectors.registered_model_list(include_deleted=True), name=name)
        return selectors.model_version_list(name=name, include_deleted=include_deleted)

    def get_serializer_class(self):
        return ModelVersionDetailSerializer if self.action == "retrieve" else ModelVersionSerializer


class ModelAliasView(APIView):
    """Point an alias at a version (promotion, gated by holdout RMSE) or remove it; maintainers only."""

    permission_classes = [CanSetAlias]

    @extend_schema(
        request=AliasSetSerializer,
        responses={200: AliasMoveSerializer},
        description="Moves the alias in MLflow, mirrors it and audits it. 409 `worse_than_current` if the "
        "version's holdout RMSE is worse than the current holder's by more than MDS_PROMOTION_TOLERANCE, unless "
        '`"force": true`. Every inference process serves the move within MDS_ALIAS_TTL seconds.',
    )
    def post(self, request, name: str, alias: str):
        params = AliasSetSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        move = model_alias_set(
            name=name,
            alias=alias,
            version=params.validated_data["version"],
            force=params.validated_data["force"],
            user=request.user,
        )
        body = {"model_name": name, "alias": alias.removeprefix("@"), "version": params.validated_data["version"]}
        if move is None:
            return Response({**body, "previous_version": body["version"], "moved": False, "forced": False})
        return Response({**body, "previous_version": move.from_version, "moved": True, "forced": move.forced})

    @extend_schema(request=None, responses={200: AliasMoveSerializer}, description="Removes the alias.")
    def delete(self, request, name: str, alias: str):
        move = model_alias_remove(name=name, alias=alias, user=request.user)
        body = {
            "model_name": name,
            "alias": move.alias,
            "version": None,
            "previous_version": move.from_version,
            "moved": True,
            "forced": False,
        }
        return Response(body, status=status.HTTP_200_OK)


class ModelAccessView(APIView):
    """Who owns a model and which groups it is shared with (who may train new versions of it); maintainers only."""

    permission_classes = [CanShareModels]

    @extend_schema(responses={200: ModelAccessSerializer}, description="The model's owner and sharing.")
    def get(self, request, name: str):
        model = get_object_or_404(selectors.registered_model_list(include_deleted=True), name=name)
        return Response(ModelAccessSerializer(model).data)

    @extend_schema(
        request=ModelAccessSerializer,
        responses={200: ModelAccessSerializer},
        description="Sets the owner (a username, or null: maintainers only) and replaces the groups the model is "
        "shared with. 400 `unknown_user` / `unknown_group` for names that match none.",
    )
    def put(self, request, name: str):
        params = ModelAccessSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        model = model_access_set(
            name=name,
            owner=params.validated_data["owner"],
            shared_with=params.validated_data["shared_with"],
        )
        return Response(ModelAccessSerializer(model).data)
