"""Kept retraining triggers count their failed starts, and maintainers see them in the admin (and may drop one)."""

from django.db import migrations, models

from core.grants import role_grant


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0011_retrain_requests'),
    ]

    operations = [
        migrations.AddField(
            model_name='retrainrequest',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0, help_text='Starts that failed with no dependency down.'),
        ),
        migrations.AddField(
            model_name='retrainrequest',
            name='last_error',
            field=models.CharField(blank=True, max_length=1000),
        ),
        role_grant("training", "maintainer", ("view_retrainrequest", "delete_retrainrequest")),
    ]
