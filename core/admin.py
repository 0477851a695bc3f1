"""API tokens in the admin: who holds which, since when and until when; never a secret (the database has none).

Replaces knox's page, which lists each token by its digest and lets staff edit it. Here a token can be revoked
(deleted) by those allowed to (``knox.delete_authtoken``: maintainers); new ones come from ``issue_token`` or
``POST /tokens``, which show the token once.
"""

from django.contrib import admin
from django.utils import timezone
from knox.models import AuthToken

from .auth import token_cache_forget
from .token_apis import PREFIX_LENGTH

if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "created", "expiry", "expired"]
    list_filter = ["created", "expiry"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    fields = ("prefix", "user", "created", "expiry")
    readonly_fields = fields
    ordering = ["-created"]

    @admin.display(description="token starts with")
    def prefix(self, obj: AuthToken) -> str:
        return f"{obj.token_key[:PREFIX_LENGTH]}…"

    @admin.display(boolean=True)
    def expired(self, obj: AuthToken) -> bool:
        return obj.expiry is not None and obj.expiry <= timezone.now()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        token_cache_forget(obj.digest)

    def delete_queryset(self, request, queryset):
        digests = list(queryset.values_list("digest", flat=True))
        super().delete_queryset(request, queryset)
        for digest in digests:
            token_cache_forget(digest)


from .webhooks import admin as webhooks_admin  # noqa: E402,F401  (registers the webhooks' pages)
