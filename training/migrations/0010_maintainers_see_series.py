"""Maintainers see models' dataset series, and set their retraining policies (a registry mirror model: the roles
live in this app, the mirror names no other), in the admin as through ``PUT /models/<name>/retrain-policy``."""

from django.db import migrations

from core.grants import role_grant


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0009_dataset_series_and_retraining"),
        ("registry_mirror", "0006_retrain_policy_and_challenger"),
    ]

    operations = [
        role_grant("training", "maintainer", ("view_datasetseries", "view_seriessegment")),
        role_grant(
            "registry_mirror", "maintainer", ("view_retrainpolicy", "add_retrainpolicy", "change_retrainpolicy")
        ),
    ]
