"""Registered versions held in memory: loaded from MLflow once per process, then served without calling it.

The cache is bounded by count and by artifact bytes (least recently used goes first); concurrent first
requests for one version wait for a single load. ``latest`` and aliases are resolved at most once per TTL and
re-resolved in the background while the known version keeps serving, so moving ``champion`` takes effect
without a restart and a brief MLflow outage does not stop predictions. MLflow is reached through
``registry_mirror.gateway``: over the REST API of an MLflow server, or for other stores in a child process
(``gateway.RegistryProcess``), so this process never imports MLflow and stays small.
"""

import os
import threading

from django.conf import settings

from registry_mirror import gateway

from .cache import ModelCache
from .registries import ChildProcessRegistry, InProcessRegistry, ServingRegistry
from .versions import LoadedVersion, load_version

__all__ = [
    "ChildProcessRegistry",
    "InProcessRegistry",
    "LoadedVersion",
    "ModelCache",
    "ServingRegistry",
    "load_version",
    "model_cache",
    "prediction_threads",
    "registry_process",
]

_cache: ModelCache | None = None
_process: gateway.RegistryProcess | None = None
_singletons_lock = threading.Lock()


def registry_process() -> gateway.RegistryProcess:
    with _singletons_lock:
        return _process_unlocked()


def model_cache() -> ModelCache:
    global _cache
    with _singletons_lock:
        if _cache is None:
            child = ChildProcessRegistry(_process_unlocked()) if settings.MDS_REGISTRY_PROCESS else None
            _cache = ModelCache(
                max_entries=settings.MDS_MODEL_CACHE_SIZE,
                max_bytes=settings.MDS_MODEL_CACHE_BYTES,
                alias_ttl=settings.MDS_ALIAS_TTL,
                registry=ServingRegistry(child),
            )
        return _cache


def _process_unlocked() -> gateway.RegistryProcess:
    global _process
    if _process is None:
        _process = gateway.RegistryProcess(idle_timeout=settings.MDS_REGISTRY_PROCESS_IDLE)
    return _process


def prediction_threads() -> int:
    """Threads a large batch is split across (``MDS_ONNX_THREADS``; 0 means one per core)."""
    return settings.MDS_ONNX_THREADS or os.cpu_count() or 1
