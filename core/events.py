"""What happened in MDS, told to whoever listens (webhooks) without the teller knowing them.

An app calls ``emit(EVENT, payload)`` inside the transaction that made the change: the ``event_emitted`` signal's
receivers (``core.webhooks`` records a delivery per subscription) write in that same transaction, so an event
is recorded exactly when its change is committed. ``payload`` is plain JSON: names, versions, figures.
"""

from typing import Any

from django.dispatch import Signal

VERSION_REGISTERED = "version.registered"
ALIAS_MOVED = "alias.moved"
TRIAL_STARTED = "trial.started"
TRIAL_PROMOTED = "trial.promoted"
TRIAL_ROLLED_BACK = "trial.rolled_back"
DRIFT_DETECTED = "drift.detected"
# A version's live MAE (from feedback) passed its retraining policy's factor times its holdout MAE.
ACCURACY_DEGRADED = "accuracy.degraded"
JOB_FAILED = "job.failed"

EVENTS = (
    VERSION_REGISTERED,
    ALIAS_MOVED,
    TRIAL_STARTED,
    TRIAL_PROMOTED,
    TRIAL_ROLLED_BACK,
    DRIFT_DETECTED,
    ACCURACY_DEGRADED,
    JOB_FAILED,
)

# Sent with ``event`` (one of EVENTS) and ``payload`` (a JSON-serialisable dict).
event_emitted = Signal()


def emit(event: str, payload: dict[str, Any]) -> None:
    """Tell the listeners that ``event`` happened; ``ValueError`` for a name not in ``EVENTS``."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}: one of {', '.join(EVENTS)}")
    event_emitted.send(sender=None, event=event, payload=payload)
