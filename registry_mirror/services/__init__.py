"""Keeping the registry mirror in step with MLflow (``sync``), moving aliases (``aliases``), and registering the
versions this service trains (``trained``)."""

from .aliases import model_alias_remove, model_alias_set
from .sync import SyncResult, registry_mirror_sync
from .trained import trained_version_register

__all__ = ["SyncResult", "model_alias_remove", "model_alias_set", "registry_mirror_sync", "trained_version_register"]
