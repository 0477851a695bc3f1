"""Celery tasks of core, where ``autodiscover_tasks`` looks for them."""

from .webhooks.tasks import webhook_deliveries_dispatch_task, webhook_delivery_send_task

__all__ = ["webhook_deliveries_dispatch_task", "webhook_delivery_send_task"]
