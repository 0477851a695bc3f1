"""``/webhooks``: maintainers subscribe URLs to events, see and test them, and read and redeliver deliveries."""

from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from core.events import EVENTS
from core.permissions import requires

from . import services
from .models import WebhookDelivery, WebhookSubscription

EVENT_HELP = f'Event names ({", ".join(EVENTS)}), or ["*"] (the default): every event.'
HTTP_URL = URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// URL.")


class WebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    url = serializers.URLField(max_length=2000, validators=[HTTP_URL])
    events = serializers.ListField(child=serializers.CharField(max_length=64), required=False, help_text=EVENT_HELP)
    active = serializers.BooleanField(required=False, default=True)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    created_by = serializers.CharField(source="created_by.get_username", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class NewWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Signs every delivery; shown this once.")


class DeliverySerializer(serializers.ModelSerializer):
    webhook = serializers.IntegerField(source="subscription_id", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook",
            "event",
            "event_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
            "payload",
        ]
        read_only_fields = fields


PERMISSIONS = {
    "list": "view",
    "retrieve": "view",
    "create": "add",
    "test": "add",
    "partial_update": "change",
    "destroy": "delete",
}


class WebhookViewSet(viewsets.GenericViewSet):
    """Subscriptions to MDS's events; maintainers only."""

    serializer_class = WebhookSerializer
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self):
        return WebhookSubscription.objects.select_related("created_by")

    def get_permissions(self):
        if self.action == "deliveries":
            return [requires("core.view_webhooksubscription", "core.view_webhookdelivery")()]
        verb = PERMISSIONS.get(self.action or "", "change")
        return [requires(f"core.{verb}_webhooksubscription")()]

    @extend_schema(description="Every subscription (never its secret).")
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WebhookSerializer(page, many=True).data)

    @extend_schema(
        request=WebhookSerializer,
        responses={201: NewWebhookSerializer},
        description="Subscribe `url` (http or https) to `events`. The answer holds the `secret` that signs the "
        f"deliveries, shown this once. {EVENT_HELP} 400 `invalid_input` naming the field, `unknown_event`.",
    )
    def create(self, request):
        params = WebhookSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        subscription = services.subscription_create(**params.validated_data, user=request.user)
        return Response(NewWebhookSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk: str):
        return Response(WebhookSerializer(services.subscription_get(subscription_id=int(pk))).data)

    @extend_schema(request=WebhookSerializer, description="Change the URL, events, description or `active`.")
    def partial_update(self, request, pk: str):
        params = WebhookSerializer(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        subscription = services.subscription_update(subscription_id=int(pk), **params.validated_data)
        return Response(WebhookSerializer(subscription).data)

    @extend_schema(request=None, responses={204: None}, description="Unsubscribe (its deliveries go with it).")
    def destroy(self, request, pk: str):
        services.subscription_get(subscription_id=int(pk)).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: DeliverySerializer(many=True)}, description="Its deliveries, newest first.")
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk: str):
        subscription = services.subscription_get(subscription_id=int(pk))
        page = self.paginate_queryset(subscription.deliveries.all())
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={202: DeliverySerializer},
        description=f"Send a `{services.PING}` event to this subscription alone; follow it in its deliveries.",
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk: str):
        delivery = services.subscription_test(subscription_id=int(pk), user=request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryRedeliverView(APIView):
    """Send a delivery again (same event id, a fresh count of attempts); maintainers only."""

    permission_classes = [requires("core.change_webhookdelivery")]

    @extend_schema(request=None, responses={202: DeliverySerializer}, description="Send the delivery again.")
    def post(self, request, pk: str):
        delivery = services.delivery_redeliver(delivery_id=int(pk))
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
