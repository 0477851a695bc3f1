"""Sending deliveries: the signed POST, the outcome and its retries, and who sends (a worker, or embedded mode's
sender thread).

A delivery is sent by whoever holds its ``claim``: the first sender gets it with the delivery (after the commit);
a sender whose hold (``MDS_WEBHOOK_LEASE`` seconds) runs out before it reports (a message the broker never took,
a process that died) loses it to the sweeper (``deliveries_dispatch``, on beat every
``MDS_WEBHOOK_SWEEP_INTERVAL`` seconds, or a thread of the web process in embedded mode), which also sends the
retries once due. A receiver may so get an event twice, never with another id: ``MDS-Delivery`` names the event.

An answer 2xx is delivered; anything else (another status, a redirect, which is never followed, no answer within
``MDS_WEBHOOK_TIMEOUT``) is tried again ``MDS_WEBHOOK_RETRY_BASE * 2**(n-1)`` seconds later (at most
``MDS_WEBHOOK_RETRY_MAX``), until ``MDS_WEBHOOK_MAX_ATTEMPTS`` attempts failed.
"""

import json
import logging
import queue
import threading
import uuid
from collections.abc import Iterable
from datetime import timedelta

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..background import periodic_on_first_request
from .destinations import destination_refusal
from .models import WebhookDelivery
from .signing import sign

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status
USER_AGENT = "MDS-Webhooks/1"
# What of a refusing receiver's answer the log keeps.
ANSWER_CHARS = 200
ERROR_CHARS = 1000


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The JSON a receiver gets: the same bytes on every attempt (only the signature's timestamp changes)."""
    body = {
        "id": str(delivery.event_id),
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"),
        "data": delivery.payload,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def delivery_send(*, delivery_id: int, claim: str) -> WebhookDelivery | None:
    """POST the delivery, if ``claim`` still holds it and it is pending, and record the outcome.

    Returns:
        The delivery as recorded, or ``None`` if this sender no longer holds it (sent, or taken over).
    """
    now = timezone.now()
    held = WebhookDelivery.objects.filter(pk=delivery_id, claim=claim, status=Status.PENDING)
    if not held.update(attempts=F("attempts") + 1, next_attempt_at=now + _lease()):
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    status_code, error = _post(delivery)
    now = timezone.now()
    outcome: dict = {"last_status_code": status_code, "last_error": error, "claim": None}
    if error == "":
        outcome.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif delivery.attempts >= settings.MDS_WEBHOOK_MAX_ATTEMPTS:
        outcome.update(status=Status.FAILED, next_attempt_at=None)
        logger.warning("Webhook delivery %s failed %s times; giving up: %s", delivery_id, delivery.attempts, error)
    else:
        outcome.update(next_attempt_at=now + timedelta(seconds=retry_delay(delivery.attempts)))
        logger.info("Webhook delivery %s attempt %s failed: %s", delivery_id, delivery.attempts, error)
    # Taken over meanwhile (this attempt outlived its hold): the new holder's outcome is the one kept.
    held.update(**outcome)
    delivery.refresh_from_db()
    return delivery


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling from the base, capped."""
    return min(settings.MDS_WEBHOOK_RETRY_BASE * 2 ** max(attempts - 1, 0), settings.MDS_WEBHOOK_RETRY_MAX)


def _post(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """The answer's status code (``None``: no answer) and the error (``""``: delivered)."""
    refusal = destination_refusal(delivery.subscription.url)
    if refusal:
        return None, f"Refused: {refusal}"[:ERROR_CHARS]
    body = delivery_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "MDS-Event": delivery.event,
        "MDS-Delivery": str(delivery.event_id),
        "MDS-Signature": sign(delivery.subscription.secret, body),
    }
    try:
        with requests.post(
            delivery.subscription.url,
            data=body,
            headers=headers,
            timeout=settings.MDS_WEBHOOK_TIMEOUT,
            allow_redirects=False,
            stream=True,
        ) as answer:
            if 200 <= answer.status_code < 300:
                return answer.status_code, ""
            text = answer.raw.read(ANSWER_CHARS, decode_content=True).decode(errors="replace")
            return answer.status_code, f"HTTP {answer.status_code}: {text}".strip()[:ERROR_CHARS]
    except (requests.RequestException, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


def deliveries_dispatch(*, limit: int = 500) -> list[int]:
    """Take every pending delivery that is due (a retry, or one whose sender's hold ran out) and send it.

    Returns the ids of the deliveries taken. Two sweepers at once take each delivery once.
    """
    now = timezone.now()
    due = WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at")
    taken: list[tuple[int, str]] = []
    for delivery_id, claim, next_attempt_at in due.values_list("pk", "claim", "next_attempt_at")[:limit]:
        new_claim = str(uuid.uuid4())
        if WebhookDelivery.objects.filter(
            pk=delivery_id, status=Status.PENDING, claim=claim, next_attempt_at=next_attempt_at
        ).update(claim=new_claim, next_attempt_at=now + _lease()):
            taken.append((delivery_id, new_claim))
    if taken:
        logger.info("Webhook sweeper: sending %s", [delivery_id for delivery_id, _ in taken])
    deliveries_send(taken)
    return [delivery_id for delivery_id, _ in taken]


def deliveries_send_after_commit(pairs: list[tuple[int, str]]) -> None:
    """Send these (delivery id, claim) once the current transaction commits; nothing if it rolls back."""
    transaction.on_commit(lambda: deliveries_send(pairs))


def deliveries_send(pairs: Iterable[tuple[int, str]]) -> None:
    """Hand each (delivery id, claim) to a sender: a worker, or in embedded mode this process's sender thread.

    Never raises: a delivery no sender took is the sweeper's once its hold runs out.
    """
    from .tasks import webhook_delivery_send_task

    for delivery_id, claim in pairs:
        if background_sending():
            sender().submit(delivery_id, claim)
            continue
        try:
            webhook_delivery_send_task.apply_async(args=(delivery_id, claim))
        except Exception as exc:  # whatever the broker client (or an eager send) raises: the sweeper sends it later
            logger.warning("Could not send webhook delivery %s now (%s); the sweeper will", delivery_id, exc)


def _lease() -> timedelta:
    return timedelta(seconds=settings.MDS_WEBHOOK_LEASE)


# --- Embedded mode: a sender thread and a sweeper thread in the web process ------------------------------------


def background_sending() -> bool:
    """Whether this process sends on its own sender thread (embedded mode, no broker, background on)."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER and settings.MDS_WEBHOOK_BACKGROUND)


class SenderThread:
    """One daemon thread that sends what it is given, in order, off the request that committed it."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._work, name="webhook-sender", daemon=True).start()

    def submit(self, delivery_id: int, claim: str) -> None:
        self._queue.put((delivery_id, claim))

    def _work(self) -> None:
        while True:
            delivery_id, claim = self._queue.get()
            try:
                delivery_send(delivery_id=delivery_id, claim=claim)
            except Exception:
                # The database is down for a moment: the delivery stays held, then the sweeper takes it again.
                logger.exception("Webhook delivery %s could not be sent", delivery_id)
            finally:
                connection.close()


_sender: SenderThread | None = None
_lock = threading.Lock()


def sender() -> SenderThread:
    """This process's sender thread, started on first use."""
    global _sender
    with _lock:
        if _sender is None:
            _sender = SenderThread()
        return _sender


def embedded_sweeper_connect() -> None:
    """Start the sweeper with this process's first request in embedded mode."""
    if background_sending():
        periodic_on_first_request(
            name="webhook-sweeper",
            first_pass=deliveries_dispatch,
            every_pass=deliveries_dispatch,
            interval=lambda: settings.MDS_WEBHOOK_SWEEP_INTERVAL,
        )
