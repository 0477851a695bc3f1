"""Keeping the registry mirror in step with MLflow (``sync``), moving aliases (``aliases``), registering the
versions this service trains (``trained``), adopting those registered elsewhere (``adoption``), and who may train
which model (``access``), and when models are retrained (``policy``)."""

from .access import model_access_set, model_training_check, model_training_claim
from .adoption import model_version_adopt
from .aliases import model_alias_accept, model_alias_remove, model_alias_set, model_challenger_set
from .policy import retrain_policy_get, retrain_policy_schedule_claim, retrain_policy_set
from .sync import SyncResult, registry_mirror_sync
from .trained import trained_version_register

__all__ = [
    "SyncResult",
    "model_access_set",
    "model_alias_accept",
    "model_alias_remove",
    "model_alias_set",
    "model_challenger_set",
    "model_training_check",
    "model_training_claim",
    "model_version_adopt",
    "registry_mirror_sync",
    "retrain_policy_get",
    "retrain_policy_schedule_claim",
    "retrain_policy_set",
    "trained_version_register",
]
