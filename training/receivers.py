"""Retraining started by what other apps tell (``core.events``): drift of the champion's inputs, and the
champion's live MAE degraded past its policy's factor (both measured by serving's monitoring)."""

import logging
from typing import Any

from django.conf import settings

from core import events
from registry_mirror import selectors as mirror_selectors

from .models import TrainingJob

logger = logging.getLogger(__name__)

TRIGGERS = {
    events.DRIFT_DETECTED: TrainingJob.Trigger.DRIFT,
    events.ACCURACY_DEGRADED: TrainingJob.Trigger.DEGRADATION,
}


def payload_model(payload: dict[str, Any]) -> tuple[str | None, int | None]:
    """The model name and version an event's payload names (``model_name``/``version``, or ``model: {name,
    version}``)."""
    model = payload.get("model")
    if isinstance(model, dict):
        name, version = model.get("name"), model.get("version")
    else:
        name, version = payload.get("model_name") or model, payload.get("version")
    try:
        return (str(name) if name else None), (int(version) if version is not None else None)
    except (TypeError, ValueError):
        return (str(name) if name else None), None


def on_event(sender=None, *, event: str, payload: dict[str, Any], **kwargs) -> None:
    """Keep a retraining request in the event's transaction (queued once it commits), if the model's policy asks
    for it and the event is about the version the model serves (a challenger on trial does not retrain the model)."""
    trigger = TRIGGERS.get(event)
    if trigger is None:
        return
    name, version = payload_model(payload)
    if name is None:
        return
    policy = mirror_selectors.retrain_policy_of(name=name)
    if policy is None:
        return
    wanted = policy.on_drift if trigger == TrainingJob.Trigger.DRIFT else policy.degradation_factor is not None
    if not wanted:
        return
    champion = mirror_selectors.served_aliases_of(name=name).get(settings.MDS_SERVING_ALIAS)
    if version is not None and champion is not None and version != champion:
        logger.info(
            "Not retraining %r on %s of version %s: it is not the champion (%s)", name, event, version, champion
        )
        return
    from .services.series import retrain_later

    retrain_later(name=name, trigger=trigger)


def receivers_connect() -> None:
    events.event_emitted.connect(on_event, dispatch_uid="training.retrain_on_event")
