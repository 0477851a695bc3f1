"""Celery entry points for webhooks: thin wrappers that call ``sending`` by delivery id."""

from celery import shared_task


# A send waits at most MDS_WEBHOOK_TIMEOUT for its receiver: far below these limits.
@shared_task(ignore_result=True, acks_late=True, soft_time_limit=60, time_limit=90)
def webhook_delivery_send_task(delivery_id: int, claim: str) -> None:
    from .sending import delivery_send

    delivery_send(delivery_id=delivery_id, claim=claim)


@shared_task(ignore_result=True)
def webhook_deliveries_dispatch_task() -> None:
    """Send the deliveries that are due: retries, and those no sender took (beat runs it)."""
    from .sending import deliveries_dispatch

    deliveries_dispatch()
