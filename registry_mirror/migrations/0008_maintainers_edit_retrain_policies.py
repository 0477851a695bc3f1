"""Maintainers set retraining policies in the admin, as through ``PUT /models/<name>/retrain-policy``."""

from django.db import migrations

from core.grants import role_grant


class Migration(migrations.Migration):
    dependencies = [
        ("registry_mirror", "0007_alias_move_source_trial"),
        ("training", "0003_roles"),
    ]

    operations = [
        role_grant("registry_mirror", "maintainer", ("view_retrainpolicy", "add_retrainpolicy", "change_retrainpolicy")),
    ]
