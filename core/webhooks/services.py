"""Subscriptions, and the outbox: an emitted event becomes one delivery per subscription that hears it, written in
the emitter's transaction and sent once that transaction commits (``sending``).

A change rolled back leaves no delivery; a change committed leaves its deliveries even if no sender is up then
(the sweeper sends them later). Receivers that are down cost the emitter nothing: sending happens after commit,
off the request, on a worker (or embedded mode's sender thread).
"""

import logging
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError, NotFound
from core.events import EVENTS

from .destinations import destination_check
from .models import ALL_EVENTS, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

# The test event a maintainer sends to one subscription (``POST /webhooks/<id>/test``); no subscription asks for it.
PING = "ping"
SECRET_PREFIX = "whsec_"


def deliveries_record(*, event: str, payload: dict[str, Any], event_id: uuid.UUID | None = None) -> list[int]:
    """One pending delivery of ``event`` per active subscription that hears it, in the caller's transaction; each
    is sent after the commit. Returns the deliveries' ids."""
    subscriptions = [sub for sub in WebhookSubscription.objects.filter(active=True) if sub.hears(event)]
    if not subscriptions:
        return []
    event_id = event_id or uuid.uuid4()
    return [
        _delivery_create(subscription=sub, event=event, payload=payload, event_id=event_id) for sub in subscriptions
    ]


def event_emitted_receiver(sender=None, *, event: str, payload: dict[str, Any], **kwargs) -> None:
    """``core.events.event_emitted``'s receiver: the deliveries of the event (``deliveries_record``)."""
    deliveries_record(event=event, payload=payload)


def _delivery_create(
    *, subscription: WebhookSubscription, event: str, payload: dict[str, Any], event_id: uuid.UUID
) -> int:
    from .sending import deliveries_send_after_commit

    # Created held by its first sender, so that the sweeper leaves it to that sender unless the hold runs out
    # (the broker took no message, the process died).
    claim = uuid.uuid4()
    delivery = WebhookDelivery(
        subscription=subscription,
        event=event,
        event_id=event_id,
        payload=payload,
        claim=claim,
        next_attempt_at=timezone.now() + timedelta(seconds=settings.MDS_WEBHOOK_LEASE),
    )
    delivery.full_clean(validate_unique=False, validate_constraints=False)
    delivery.save()
    deliveries_send_after_commit([(delivery.pk, str(claim))])
    return delivery.pk


def events_clean(events: list[str] | None) -> list[str]:
    """``events`` checked against ``core.events.EVENTS`` (``["*"]`` or nothing: every event), without repeats."""
    if not events or ALL_EVENTS in events:
        return [ALL_EVENTS]
    unknown = [name for name in events if name not in EVENTS]
    if unknown:
        raise ApplicationError(
            f"Unknown event {unknown[0]!r}: one of {', '.join(EVENTS)}, or '*' for every event.",
            code="unknown_event",
            extra={"field": "events", "event": unknown[0], "events": list(EVENTS)},
        )
    return list(dict.fromkeys(events))


@transaction.atomic
def subscription_create(
    *, url: str, events: list[str] | None = None, description: str = "", active: bool = True, user=None
) -> WebhookSubscription:
    """A new subscription with a secret made here (``whsec_…``), which the caller shows once."""
    destination_check(url)
    subscription = WebhookSubscription(
        url=url,
        events=events_clean(events),
        description=description,
        active=active,
        secret=SECRET_PREFIX + secrets.token_urlsafe(32),
        created_by=user if user is not None and user.is_authenticated else None,
    )
    subscription.full_clean()
    subscription.save()
    return subscription


@transaction.atomic
def subscription_update(*, subscription_id: int, **changes: Any) -> WebhookSubscription:
    """Change ``url``, ``events``, ``description`` or ``active``; the secret never changes."""
    subscription = subscription_get(subscription_id=subscription_id, for_update=True)
    if "url" in changes and changes["url"] != subscription.url:
        destination_check(changes["url"])
    if "events" in changes:
        changes["events"] = events_clean(changes["events"])
    for name in ("url", "events", "description", "active"):
        if name in changes:
            setattr(subscription, name, changes[name])
    subscription.full_clean()
    subscription.save()
    return subscription


def subscription_get(*, subscription_id: int, for_update: bool = False) -> WebhookSubscription:
    rows = WebhookSubscription.objects.select_for_update() if for_update else WebhookSubscription.objects
    subscription = rows.filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(f"There is no webhook {subscription_id}.", extra={"id": subscription_id})
    return subscription


@transaction.atomic
def subscription_test(*, subscription_id: int, user=None) -> WebhookDelivery:
    """Send a ``ping`` to this subscription alone (active or not), delivered and logged like any event."""
    subscription = subscription_get(subscription_id=subscription_id)
    payload = {
        "webhook_id": subscription.pk,
        "url": subscription.url,
        "sent_by": user.get_username() if user is not None and user.is_authenticated else None,
    }
    delivery_id = _delivery_create(subscription=subscription, event=PING, payload=payload, event_id=uuid.uuid4())
    return WebhookDelivery.objects.get(pk=delivery_id)


@transaction.atomic
def delivery_redeliver(*, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again, whatever its outcome so far, with a fresh count of attempts and the same event id
    (a receiver that had it already recognises it)."""
    from .sending import deliveries_send_after_commit

    delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound(f"There is no webhook delivery {delivery_id}.", extra={"id": delivery_id})
    claim = uuid.uuid4()
    delivery.status, delivery.attempts, delivery.claim = WebhookDelivery.Status.PENDING, 0, claim
    delivery.next_attempt_at = timezone.now() + timedelta(seconds=settings.MDS_WEBHOOK_LEASE)
    delivery.delivered_at = None
    delivery.full_clean(validate_unique=False, validate_constraints=False)
    delivery.save()
    deliveries_send_after_commit([(delivery.pk, str(claim))])
    return delivery
