"""A migration that gives a role (a group) permissions on its app's models, created on the spot: Django creates
permissions only after all migrations ran (post_migrate), and the group needs them now. A database without the
group (roles not set up yet) is left alone; the roles' own migration gives what it lists."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def role_grant(app_label: str, role: str, codenames: tuple[str, ...]) -> migrations.RunPython:
    def permissions(apps):
        return apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label=app_label, codename__in=codenames
        )

    def grant(apps, schema_editor):
        app_config = apps.get_app_config(app_label)
        models_module, app_config.models_module = getattr(app_config, "models_module", None), True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
        group = apps.get_model("auth", "Group").objects.filter(name=role).first()
        if group is not None:
            group.permissions.add(*permissions(apps))

    def revoke(apps, schema_editor):
        group = apps.get_model("auth", "Group").objects.filter(name=role).first()
        if group is not None:
            group.permissions.remove(*permissions(apps))

    return migrations.RunPython(grant, revoke)
