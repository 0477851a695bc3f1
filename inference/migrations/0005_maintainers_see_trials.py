"""Maintainers see live trials and their decisions in the admin."""

from django.db import migrations

from core.grants import role_grant


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0004_trials"),
        ("training", "0003_roles"),
    ]

    operations = [
        role_grant("inference", "maintainer", ("view_trial",)),
    ]
