"""Models have owners: maintainers may train every model and share models; models trained before owners existed
get one.

Each model gets the user of the earliest training job that registered a version of it. A name trained by MDS that
the mirror has not synced yet gets its row now, so that the first trainer to train it after this migration cannot
take it. A model left without an owner (no such job, or its user is gone) is trained by maintainers only until one
of them sets the owner.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MAINTAINER_PERMISSIONS = [("registry_mirror", "train_any_model"), ("registry_mirror", "share_model")]


def model_access_grant(apps, schema_editor):
    # As in 0003_roles: the permissions Django would create after all migrations ran are needed now.
    app_config = apps.get_app_config("registry_mirror")
    models_module, app_config.models_module = getattr(app_config, "models_module", None), True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    group = apps.get_model("auth", "Group").objects.filter(name="maintainer").first()
    if group is None:
        return
    permission_model = apps.get_model("auth", "Permission")
    for app_label, codename in MAINTAINER_PERMISSIONS:
        group.permissions.add(permission_model.objects.get(content_type__app_label=app_label, codename=codename))


def model_access_revoke(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name="maintainer").first()
    if group is not None:
        permissions = apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label="registry_mirror", codename__in=[code for _, code in MAINTAINER_PERMISSIONS]
        )
        group.permissions.remove(*permissions)


def model_owners_from_jobs(apps, schema_editor):
    registered_model = apps.get_model("registry_mirror", "RegisteredModel")
    jobs = (
        apps.get_model("training", "TrainingJob")
        .objects.filter(registered_version__isnull=False)
        .order_by("created_at", "pk")
        .values_list("model_name", "created_by_id")
    )
    first_trainer: dict[str, int | None] = {}
    for name, user_id in jobs:
        first_trainer.setdefault(name, user_id)
    for name, user_id in first_trainer.items():
        model = registered_model.objects.filter(name=name).first()
        if model is None:
            registered_model.objects.create(name=name, owner_id=user_id)
        elif model.owner_id is None:
            model.owner_id = user_id
            model.save(update_fields=["owner"])


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0006_job_error_extra"),
        ("training", "0003_roles"),
        ("registry_mirror", "0004_model_owners"),
    ]

    operations = [
        migrations.RunPython(model_access_grant, model_access_revoke),
        migrations.RunPython(model_owners_from_jobs, migrations.RunPython.noop),
    ]
