"""Maintainers see models' dataset series in the admin."""

from django.db import migrations

from core.grants import role_grant


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0009_dataset_series_and_retraining"),
    ]

    operations = [
        role_grant("training", "maintainer", ("view_datasetseries", "view_seriessegment")),
    ]
