"""The Celery application; configuration comes from Django settings (``CELERY_*``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mds_project.settings.production")

app = Celery("mds_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
