"""Webhooks: subscriptions and their deliveries (the outbox); maintainers manage them and read the log."""


import django.core.validators
import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models

from core.grants import role_grant

MAINTAINER_PERMISSIONS = (
    "view_webhooksubscription",
    "add_webhooksubscription",
    "change_webhooksubscription",
    "delete_webhooksubscription",
    "view_webhookdelivery",
    "change_webhookdelivery",
)


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_hashed_tokens'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookSubscription',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('url', models.URLField(max_length=2000, validators=[django.core.validators.URLValidator(schemes=['http', 'https'])])),
                ('secret', models.CharField(editable=False, max_length=100)),
                ('events', models.JSONField(default=list)),
                ('active', models.BooleanField(default=True)),
                ('description', models.CharField(blank=True, max_length=200)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('event', models.CharField(max_length=64)),
                ('event_id', models.UUIDField(db_index=True, default=uuid.uuid4)),
                ('payload', models.JSONField(default=dict)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=16)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('claim', models.UUIDField(blank=True, editable=False, null=True)),
                ('last_status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='core.webhooksubscription')),
            ],
            options={
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-created_at', '-pk'],
                'indexes': [models.Index(fields=['status', 'next_attempt_at'], name='webhook_delivery_due')],
                'constraints': [models.UniqueConstraint(fields=('subscription', 'event_id'), name='webhook_delivery_once_per_event'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'delivered'), _negated=True), ('delivered_at__isnull', False), _connector='OR'), name='webhook_delivered_has_time')],
            },
        ),
        role_grant("core", "maintainer", MAINTAINER_PERMISSIONS),
    ]
