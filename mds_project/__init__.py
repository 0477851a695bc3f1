"""MDS project wiring: settings, URLs and the Celery app."""

# Importing the app here makes `.delay()` use our broker settings instead of Celery's AMQP default.
from .celery import app as celery_app

__all__ = ("celery_app",)
