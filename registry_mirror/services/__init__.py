"""Keeping the registry mirror in step with MLflow (``sync``), and moving aliases (``aliases``)."""

from .aliases import model_alias_set
from .sync import SyncResult, registry_mirror_sync

__all__ = ["SyncResult", "model_alias_set", "registry_mirror_sync"]
