"""Logged predictions record who asked (only they, or a maintainer, may send their actuals) and keep a client's
own X-Request-Id beside the server's. Predictions logged before have no caller: maintainers' to answer for."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def maintainers_feedback_all(apps, schema_editor):
    # Django creates permissions after all migrations ran (post_migrate); the group needs this one now.
    app_config = apps.get_app_config("inference")
    models_module, app_config.models_module = getattr(app_config, "models_module", None), True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    group = apps.get_model("auth", "Group").objects.filter(name="maintainer").first()
    if group is not None:
        group.permissions.add(
            apps.get_model("auth", "Permission").objects.get(
                content_type__app_label="inference", codename="feedback_all"
            )
        )


class Migration(migrations.Migration):

    dependencies = [
        ('inference', '0001_initial'),
        ('training', '0003_roles'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='predictionlog',
            options={'ordering': ['-predicted_at'], 'permissions': [('feedback_all', "Can send actuals for any user's predictions")]},
        ),
        migrations.AddField(
            model_name='predictionlog',
            name='caller',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='predictionlog',
            name='client_request_id',
            field=models.CharField(blank=True, default='', max_length=128),
        ),
        migrations.RunPython(maintainers_feedback_all, migrations.RunPython.noop),
    ]
