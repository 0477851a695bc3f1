"""Registered versions held in memory: loaded from MLflow once per process, then served without calling it.

The cache is bounded by count and by artifact bytes (least recently used goes first); concurrent first
requests for one version wait for a single load. What a reference stands for is MDS's own record (its
database, never MLflow's aliases): ``latest`` and aliases are resolved at most once per TTL and re-resolved in the
background while the known version keeps serving, and an alias moved through MDS serves at once in the process
that moved it and within ``MDS_ALIAS_CHECK_INTERVAL`` seconds in every other; a version MDS neither trained nor
adopted is never loaded. Files come from MLflow, reached through
``registry_mirror.gateway``: over the REST API when the tracking URI is an MLflow server (as in production and
``make run``), so a serving process never imports MLflow; in-process for a local store.
"""

import functools
import threading

from django.conf import settings

from registry_mirror.signals import aliases_moved

from ..cpu_budget import ThreadShare, cpu_budget
from .cache import ModelCache
from .loading import load_version
from .versions import LoadedVersion

__all__ = ["LoadedVersion", "ModelCache", "load_version", "model_cache", "prediction_threads", "thread_share"]

_cache: ModelCache | None = None
_cache_lock = threading.Lock()
_share: ThreadShare | None = None


def model_cache() -> ModelCache:
    """This process's cache, built from settings on first use."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = ModelCache(
                max_entries=settings.MDS_MODEL_CACHE_SIZE,
                max_bytes=settings.MDS_MODEL_CACHE_BYTES,
                alias_ttl=settings.MDS_ALIAS_TTL,
                check_interval=settings.MDS_ALIAS_CHECK_INTERVAL,
            )
            # An alias this process moves serves from its next request.
            aliases_moved.connect(_aliases_moved, dispatch_uid="inference-model-cache")
        return _cache


def _aliases_moved(*, model_name: str, **kwargs) -> None:
    model_cache().aliases_forget(name=model_name)


def prediction_threads() -> int:
    """Threads one prediction may use when it runs alone (``MDS_ONNX_THREADS``; 0 means the CPU budget: the
    cores this process's affinity and cgroup quota grant, see ``inference.cpu_budget``)."""
    return settings.MDS_ONNX_THREADS or _process_cpu_budget()


@functools.cache
def _process_cpu_budget() -> int:
    # Read once per process: affinity and quota are set before it starts, and requests should not pay the syscalls.
    return cpu_budget()


def thread_share() -> ThreadShare:
    """This process's split of ``prediction_threads()`` among the predictions in flight."""
    global _share
    with _cache_lock:
        if _share is None or _share.budget != prediction_threads():
            _share = ThreadShare(prediction_threads())
        return _share
