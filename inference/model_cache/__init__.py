"""Registered versions held in memory: loaded from MLflow once per process, then served without calling it.

The cache is bounded by count and by artifact bytes (least recently used goes first); concurrent first
requests for one version wait for a single load. ``latest`` and aliases are resolved at most once per TTL and
re-resolved in the background while the known version keeps serving, so moving ``champion`` takes effect
without a restart and a brief MLflow outage does not stop predictions. MLflow is reached through
``registry_mirror.gateway``: over the REST API when the tracking URI is an MLflow server (as in production and
``make run``), so a serving process never imports MLflow; in-process for a local store.
"""

import os
import threading

from django.conf import settings

from .cache import ModelCache
from .versions import LoadedVersion, load_version

__all__ = ["LoadedVersion", "ModelCache", "load_version", "model_cache", "prediction_threads"]

_cache: ModelCache | None = None
_cache_lock = threading.Lock()


def model_cache() -> ModelCache:
    """This process's cache, built from settings on first use."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = ModelCache(
                max_entries=settings.MDS_MODEL_CACHE_SIZE,
                max_bytes=settings.MDS_MODEL_CACHE_BYTES,
                alias_ttl=settings.MDS_ALIAS_TTL,
            )
        return _cache


def prediction_threads() -> int:
    """Threads a large batch is split across (``MDS_ONNX_THREADS``; 0 means one per core)."""
    return settings.MDS_ONNX_THREADS or os.cpu_count() or 1
