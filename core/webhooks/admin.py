"""Webhooks in the admin: subscriptions (never their secret), and the deliveries log with a redeliver action."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from .destinations import destination_refusal
from .models import WebhookDelivery, WebhookSubscription
from .services import delivery_redeliver


class WebhookSubscriptionForm(forms.ModelForm):
    # Django's default for a URL typed without its scheme, said explicitly (its default changes in Django 6).
    url = forms.URLField(max_length=2000, assume_scheme="http")

    class Meta:
        model = WebhookSubscription
        fields = ("url", "events", "active", "description")

    def clean_url(self):
        url = self.cleaned_data["url"]
        # As the API: a new URL must lead to a public address; an unchanged one is left alone.
        refusal = destination_refusal(url) if "url" in self.changed_data else ""
        if refusal:
            raise ValidationError(refusal, code="webhook_url_not_public")
        return url


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    form = WebhookSubscriptionForm
    list_display = ["url", "events", "active", "description", "created_by", "created_at"]
    list_filter = ["active", "created_at"]
    search_fields = ["url", "description"]
    fields = ("url", "events", "active", "description", "created_by", "created_at", "updated_at")
    readonly_fields = ("created_by", "created_at", "updated_at")

    def has_add_permission(self, request):
        # Made through `POST /webhooks`, the one place that shows the new secret.
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event", "subscription", "status", "attempts", "last_status_code", "short_error"]
    list_filter = ["status", "event", "created_at"]
    list_select_related = ["subscription"]
    search_fields = ["event_id", "subscription__url", "event"]
    fields = (
        "subscription",
        "event",
        "event_id",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
        "payload_json",
    )
    readonly_fields = fields
    actions = ["redeliver"]

    @admin.display(description="last error")
    def short_error(self, obj: WebhookDelivery) -> str:
        return obj.last_error[:80]

    @admin.display(description="payload")
    def payload_json(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.action(description="Send the selected deliveries again", permissions=["change"])
    def redeliver(self, request, queryset):
        for delivery in queryset:
            delivery_redeliver(delivery_id=delivery.pk)
        self.message_user(request, f"{queryset.count()} deliveries queued again.", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The log is read-only; the redeliver action needs the permission a maintainer holds.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False
