"""Retraining policies: when a model is retrained without anyone asking (``RetrainPolicy``).

The policy is a model-level setting and lives here, below both apps that act on it: serving reads the degradation
factor to judge live accuracy, training reads the rest to start retrainings.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.durations import duration_normalise

from ..models import RetrainPolicy
from .aliases import model_name_check, save_checked

POLICY_FIELDS = (
    "enabled",
    "window",
    "schedule",
    "on_new_data",
    "on_drift",
    "degradation_factor",
    "degradation_min_rows",
)


def retrain_policy_get(*, name: str) -> RetrainPolicy:
    """The model's policy, or an unsaved disabled one if it has none (``NotFound`` for an impossible name)."""
    model_name_check(name)
    return RetrainPolicy.objects.filter(model_name=name).first() or RetrainPolicy(model_name=name)


@transaction.atomic
def retrain_policy_set(*, name: str, values: dict[str, Any], user=None, now: datetime | None = None) -> RetrainPolicy:
    """Set the fields of ``name``'s policy given in ``values`` (the others keep their value).

    Setting or changing ``schedule`` (re)starts its clock: the first scheduled retraining is one period later.

    Raises:
        ApplicationError: ``invalid_duration`` for a ``window`` or ``schedule`` that is not a duration.
        ValidationError: a field out of range (``degradation_factor`` at most 1).
    """
    model_name_check(name)
    policy = RetrainPolicy.objects.select_for_update().filter(model_name=name).first() or RetrainPolicy(
        model_name=name
    )
    values = {key: value for key, value in values.items() if key in POLICY_FIELDS}
    for field in ("window", "schedule"):
        if field in values:
            values[field] = duration_normalise(values[field] or "", field=field)
    if "schedule" in values and values["schedule"] != policy.schedule:
        policy.last_scheduled_at = (now or timezone.now()) if values["schedule"] else None
    for key, value in values.items():
        setattr(policy, key, value)
    policy.updated_by = user if user is not None and user.is_authenticated else None
    policy.full_clean()
    policy.save()
    return policy


@transaction.atomic
def retrain_policy_schedule_claim(*, name: str, now: datetime) -> bool:
    """Take ``name``'s scheduled retraining due at ``now``: ``True`` (and the clock restarted) if it was due.

    The row is locked, so two beat runs at once start one retraining between them.
    """
    from core.durations import duration_parse

    policy = RetrainPolicy.objects.select_for_update().filter(model_name=name).first()
    if policy is None or not policy.enabled or not policy.schedule:
        return False
    every = duration_parse(policy.schedule, field="schedule")
    if policy.last_scheduled_at is not None and now < policy.last_scheduled_at + every:
        return False
    policy.last_scheduled_at = now
    save_checked(policy)
    return True
