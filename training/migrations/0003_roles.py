"""The roles, as groups with permissions: predictor, trainer, maintainer (superusers may do everything anyway).

Kept here rather than in code the migration imports, so the roles a database was given do not change when the
code does; a later migration changes them. Users that existed before roles (neither superuser nor in a group)
become trainers, so their tokens keep working for what they did: predict, train and follow their jobs.
"""

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations

PREDICTOR = [
    ("registry_mirror", "predict"),
    ("registry_mirror", "view_registeredmodel"),
    ("registry_mirror", "view_modelversion"),
    ("registry_mirror", "view_aliasmove"),
]
TRAINER = [
    *PREDICTOR,
    ("training", "add_trainingjob"),
    ("training", "view_trainingjob"),
    ("training", "add_dataset"),
    ("training", "view_dataset"),
]
MAINTAINER = [
    *TRAINER,
    ("registry_mirror", "set_alias"),
    ("registry_mirror", "sync_mirror"),
    ("training", "view_all_jobs"),
]
ROLES = {"predictor": PREDICTOR, "trainer": TRAINER, "maintainer": MAINTAINER}


def roles_create(apps, schema_editor):
    # Django creates permissions after all migrations ran (post_migrate); the groups need them now.
    for label in ("registry_mirror", "training"):
        app_config = apps.get_app_config(label)
        models_module, app_config.models_module = getattr(app_config, "models_module", None), True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for app_label, codename in perms:
            group.permissions.add(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )
    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    trainer = group_model.objects.get(name="trainer")
    for user in user_model.objects.filter(is_superuser=False, groups__isnull=True):
        user.groups.add(trainer)


def roles_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_view_all_jobs"),
        ("registry_mirror", "0002_trust_and_promotion"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(roles_create, roles_delete)]
