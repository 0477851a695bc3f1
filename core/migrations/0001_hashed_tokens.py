"""API tokens move to django-rest-knox: the plain keys of ``rest_framework.authtoken`` become hashed, expiring
tokens, and their table (secrets in plain text) is dropped.

A key keeps working as it is (its SHA-512 digest is stored, as knox does for its own tokens) until
``MDS_TOKEN_TTL_DAYS`` after this migration. Maintainers may list and revoke everyone's tokens. The old table is
read with SQL: ``rest_framework.authtoken`` is no longer installed.
"""

import hashlib
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.utils import timezone

OLD_TABLE = "authtoken_token"
# knox's CONSTANTS.TOKEN_KEY_LENGTH: the indexed start of a token.
TOKEN_KEY_LENGTH = 15
MAINTAINER_PERMISSIONS = ("view_authtoken", "delete_authtoken")


def tokens_carry_over(apps, schema_editor):
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    with connection.cursor() as cursor:
        quote = connection.ops.quote_name
        cursor.execute(f"SELECT {quote('key')}, user_id, created FROM {quote(OLD_TABLE)}")
        rows = cursor.fetchall()
    auth_token = apps.get_model("knox", "AuthToken")
    days = settings.MDS_TOKEN_TTL_DAYS
    expiry = timezone.now() + timedelta(days=days) if days and days > 0 else None
    for key, user_id, created in rows:
        # knox.crypto.hash_token with its default SHA-512, written out: a migration must not change with settings.
        digest = hashlib.sha512(key.encode()).hexdigest()
        auth_token.objects.update_or_create(
            digest=digest, defaults={"token_key": key[:TOKEN_KEY_LENGTH], "user_id": user_id, "expiry": expiry}
        )
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        if timezone.is_naive(created):
            # SQLite hands back the UTC time Django stored, without its zone.
            created = timezone.make_aware(created, UTC)
        auth_token.objects.filter(digest=digest).update(created=created)
    schema_editor.execute(f"DROP TABLE {connection.ops.quote_name(OLD_TABLE)}")
    # Forget the old app's migrations, so that installing it again would create its table again.
    schema_editor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])


def maintainers_manage_tokens(apps, schema_editor):
    # Django creates permissions after all migrations ran (post_migrate); the group needs them now.
    app_config = apps.get_app_config("knox")
    models_module, app_config.models_module = getattr(app_config, "models_module", None), True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    group = apps.get_model("auth", "Group").objects.filter(name="maintainer").first()
    if group is None:
        return
    permission_model = apps.get_model("auth", "Permission")
    group.permissions.add(
        *permission_model.objects.filter(content_type__app_label="knox", codename__in=MAINTAINER_PERMISSIONS)
    )


def maintainers_manage_tokens_undo(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name="maintainer").first()
    if group is not None:
        group.permissions.remove(
            *apps.get_model("auth", "Permission").objects.filter(
                content_type__app_label="knox", codename__in=MAINTAINER_PERMISSIONS
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("knox", "0009_extend_authtoken_field"),
        ("training", "0003_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Irreversible in effect: the plain keys are gone; going back leaves the hashed tokens in place.
        migrations.RunPython(tokens_carry_over, migrations.RunPython.noop),
        migrations.RunPython(maintainers_manage_tokens, maintainers_manage_tokens_undo),
    ]
