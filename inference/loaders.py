"""Registered versions held in memory: loaded from MLflow once per process, then served without calling it.

The cache is bounded by count and by artifact bytes (least recently used goes first); concurrent first
requests for one version wait for a single load. ``latest`` and aliases are resolved at most once per TTL and
re-resolved in the background while the known version keeps serving, so moving ``champion`` takes effect
without a restart and a brief MLflow outage does not stop predictions. MLflow is reached through
``registry_mirror.gateway``: over the REST API of an MLflow server, or for other stores in a child process
(``gateway.RegistryProcess``), so this process never imports MLflow and stays small.
"""

import ctypes
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from registry_mirror import gateway
from registry_mirror.errors import ApplicationError, RegistryUnavailable

logger = logging.getLogger(__name__)

# Below this many rows one onnxruntime call is cheaper than splitting the batch across threads.
ONNX_SPLIT_MIN_ROWS = 512


@dataclass
class LoadedVersion:
    """One version's ONNX session (loaded eagerly) and sklearn model (loaded on first use, checksum first)."""

    name: str
    version: int
    feature_names: list[str]
    parity: dict[str, float]
    onnx_session: Any
    workdir: Path
    sklearn_sha256: str = ""
    nbytes: int = 0
    registry: Any = None
    loaded_at: float = field(default_factory=time.time)
    _sklearn: Any = None
    _sklearn_lock: threading.Lock = field(default_factory=threading.Lock)
    _prefetch: threading.Thread | None = None

    @property
    def sklearn_loaded(self) -> bool:
        return self._sklearn is not None

    def parity_within(self, max_rel_diff: float) -> bool:
        """Whether training recorded ONNX predictions within ``max_rel_diff`` of sklearn's."""
        return self.parity.get("onnx_max_rel_diff", math.inf) <= max_rel_diff

    def predict_onnx(self, X: np.ndarray, threads: int) -> np.ndarray:
        """ONNX predictions; a large batch is split across ``threads`` calls that run in parallel."""
        if threads <= 1 or len(X) < ONNX_SPLIT_MIN_ROWS:
            return self._run_onnx(X)
        parts = _executor(threads).map(self._run_onnx, np.array_split(X, threads))
        return np.concatenate(list(parts))

    def predict_sklearn(self, X: np.ndarray, threads: int) -> np.ndarray:
        """sklearn predictions; a forest's trees are split across ``threads`` for a large batch.

        ``RandomForestRegressor.predict`` dispatches every tree through joblib and validates the input once per
        tree; summing each thread's share of ``tree_.predict`` is the same arithmetic at ~2/3 of the time.
        """
        model = self.sklearn_model()
        trees = _forest_trees(model)
        if trees is None or threads <= 1 or len(X) < ONNX_SPLIT_MIN_ROWS:
            return np.asarray(model.predict(X), dtype=np.float64).ravel()
        X = np.ascontiguousarray(X, dtype=np.float32)
        shares = _executor(threads).map(_sum_of_trees, [trees[i::threads] for i in range(threads)], [X] * threads)
        return sum(shares) / len(trees)

    def prefetch_sklearn(self) -> None:
        """Download the pickle in the background, so the sklearn format later needs no MLflow call."""
        self._prefetch = threading.Thread(target=self._fetch_pickle, kwargs={"quiet": True}, daemon=True)
        self._prefetch.start()

    def sklearn_model(self):
        """The unpickled estimator, loaded once, and only if its sha256 is the one recorded at training."""
        if self._sklearn is None:
            with self._sklearn_lock:
                if self._sklearn is None:
                    if self._prefetch is not None:
                        self._prefetch.join()
                    if not (self.workdir / gateway.SKLEARN_FILE).exists():
                        self._fetch_pickle(quiet=False)
                    self._sklearn = _load_trusted_pickle(self)
                    self.nbytes += (self.workdir / gateway.SKLEARN_FILE).stat().st_size
                    _release_freed_memory()
        return self._sklearn

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _fetch_pickle(self, *, quiet: bool) -> None:
        try:
            self.registry.fetch(
                name=self.name, version=self.version, files=[gateway.SKLEARN_FILE], dst=str(self.workdir)
            )
        except ApplicationError:
            if not quiet:
                raise
            logger.warning("Could not prefetch the sklearn file of %s version %s", self.name, self.version)

    def _run_onnx(self, X: np.ndarray) -> np.ndarray:
        return self.onnx_session.run(None, {"input": X})[0].ravel()


@dataclass
class _Resolved:
    version: int
    expires: float
    refreshing: bool = False


class ModelCache:
    """Versions by ``(name, number)``, bounded by ``max_entries`` and ``max_bytes``; see the module docstring."""

    def __init__(self, *, max_entries: int, max_bytes: int, alias_ttl: float, registry=None):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.alias_ttl = alias_ttl
        self.registry = registry or InProcessRegistry()
        self.loads = 0
        self._entries: OrderedDict[tuple[str, int], LoadedVersion] = OrderedDict()
        self._resolved: dict[tuple[str, str], _Resolved] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    def get(self, name: str, version: int) -> LoadedVersion:
        """The loaded version, loading it on first use (``NotFound`` if MLflow has no such version)."""
        key = (name, version)
        with self._lock:
            loaded = self._entries.get(key)
            if loaded is not None:
                self._entries.move_to_end(key)
                return loaded
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            loaded = load_version(name=name, version=version, registry=self.registry)
            with self._lock:
                self.loads += 1
                self._entries[key] = loaded
                self._key_locks.pop(key, None)
            self.enforce_bounds()
            loaded.prefetch_sklearn()
            return loaded

    def resolve(self, name: str, reference: str) -> int:
        """The version number ``reference`` (a number, ``latest``, ``champion`` or ``@champion``) stands for."""
        if reference.isdigit():
            return int(reference)
        reference = reference if reference == "latest" else "@" + reference.removeprefix("@")
        key = (name, reference)
        now = time.monotonic()
        with self._lock:
            known = self._resolved.get(key)
            if known is not None and (now < known.expires or known.refreshing):
                return known.version
            if known is not None:
                # Expired: keep serving the known version while one thread asks MLflow again.
                known.refreshing = True
                threading.Thread(target=self._refresh, args=(key,), daemon=True).start()
                return known.version
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                known = self._resolved.get(key)
                if known is not None:
                    return known.version
            version = self.registry.version_number(name=name, version=reference)
            with self._lock:
                self._resolved[key] = _Resolved(version, time.monotonic() + self.alias_ttl)
            return version

    def enforce_bounds(self) -> None:
        """Evict least recently used versions until both limits hold; the newest entry always stays."""
        evicted = []
        with self._lock:
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries
                or sum(entry.nbytes for entry in self._entries.values()) > self.max_bytes
            ):
                evicted.append(self._entries.popitem(last=False)[1])
        for entry in evicted:
            logger.info("Evicted %s version %s from the model cache", entry.name, entry.version)
            entry.close()

    def loaded(self) -> list[LoadedVersion]:
        with self._lock:
            return list(self._entries.values())

    def aliases(self) -> dict[str, int]:
        with self._lock:
            return {f"{name}/{reference}": known.version for (name, reference), known in self._resolved.items()}

    def clear(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), OrderedDict()
            self._resolved.clear()
            self.loads = 0
        for entry in entries:
            entry.close()

    def _refresh(self, key: tuple[str, str]) -> None:
        name, reference = key
        try:
            version = self.registry.version_number(name=name, version=reference)
        except ApplicationError as exc:
            # MLflow is down or the alias is gone: keep the known version, ask again after the next TTL.
            logger.warning("Could not re-resolve %s %s: %s", name, reference, exc.message)
            version = None
        with self._lock:
            known = self._resolved[key]
            known.version = known.version if version is None else version
            known.expires = time.monotonic() + self.alias_ttl
            known.refreshing = False


class InProcessRegistry:
    """The gateway's serving calls, made in this process (imports MLflow here)."""

    def version_number(self, *, name: str, version: str) -> int:
        return gateway.model_version_number(name=name, version=version)

    def fetch(self, *, name: str, version: int, files: list[str], dst: str) -> dict[str, Any]:
        return gateway.model_version_fetch(name=name, version=version, files=files, dst=dst)


class ServingRegistry(InProcessRegistry):
    """The gateway's serving calls made where they are cheapest: with an MLflow server, over its REST API in this
    process; with any other store (embedded SQLite), in the MLflow child process unless that is turned off."""

    def __init__(self, child):
        self.child = child

    def version_number(self, *, name: str, version: str) -> int:
        if self.child is None or gateway.serves_over_rest():
            return super().version_number(name=name, version=version)
        return self.child.version_number(name=name, version=version)

    def fetch(self, *, name: str, version: int, files: list[str], dst: str) -> dict[str, Any]:
        if self.child is None or gateway.serves_over_rest():
            return super().fetch(name=name, version=version, files=files, dst=dst)
        return self.child.fetch(name=name, version=version, files=files, dst=dst)


class ChildProcessRegistry:
    """The gateway's serving calls, made by ``gateway.RegistryProcess`` in a child process."""

    def __init__(self, process: gateway.RegistryProcess):
        self.process = process

    def version_number(self, *, name: str, version: str) -> int:
        return self.process.call("model_version_number", name=name, version=version)

    def fetch(self, *, name: str, version: int, files: list[str], dst: str) -> dict[str, Any]:
        return self.process.call("model_version_fetch", name=name, version=version, files=files, dst=dst)


def load_version(*, name: str, version: int, registry) -> LoadedVersion:
    """Download a version's ONNX file and open its session; the sklearn pickle is fetched and loaded later."""
    import onnxruntime as ort

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"mds-serving-{version}-"))
    try:
        fetched = registry.fetch(name=name, version=version, files=[gateway.ONNX_FILE], dst=str(workdir))
        fetched_at = time.monotonic()
        onnx_path = Path(fetched["paths"][gateway.ONNX_FILE])
        options = ort.SessionOptions()
        # One thread per call: small requests are the common case, and large ones are split across threads
        # by `predict_onnx` instead of paying onnxruntime's thread-pool hand-off on every request.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
        _release_freed_memory()
        logger.info(
            "Loaded %s version %s: fetched in %.2f s, ONNX session in %.2f s",
            name,
            version,
            fetched_at - started,
            time.monotonic() - fetched_at,
        )
        return LoadedVersion(
            name=name,
            version=version,
            feature_names=fetched["feature_names"],
            parity=fetched["metrics"],
            onnx_session=session,
            workdir=workdir,
            sklearn_sha256=fetched["tags"].get(gateway.SKLEARN_SHA256_TAG, ""),
            nbytes=onnx_path.stat().st_size,
            registry=registry,
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _load_trusted_pickle(loaded: LoadedVersion):
    import cloudpickle

    path = loaded.workdir / gateway.SKLEARN_FILE
    try:
        actual = gateway.file_sha256(path)
    except OSError as exc:
        raise RegistryUnavailable(f"Version {loaded.version} was evicted while loading; retry.") from exc
    if not loaded.sklearn_sha256 or loaded.sklearn_sha256 != actual:
        # Unpickling runs code: only artifacts this service produced (and recorded) are loaded.
        raise ApplicationError(
            f"Version {loaded.version} of {loaded.name!r}: the sklearn artifact does not match the checksum"
            " recorded at training; refusing to load it.",
            code="untrusted_artifact",
            extra={"expected_sha256": loaded.sklearn_sha256, "actual_sha256": actual},
        )
    with open(path, "rb") as handle:
        return cloudpickle.load(handle)


def _forest_trees(model) -> list | None:
    """The fitted trees of a single-output random forest (or extra-trees) regressor, else ``None``."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    if isinstance(model, RandomForestRegressor | ExtraTreesRegressor) and model.n_outputs_ == 1:
        return [estimator.tree_ for estimator in model.estimators_]
    return None


def _sum_of_trees(trees: list, X: np.ndarray) -> np.ndarray:
    total = np.zeros(len(X), dtype=np.float64)
    for tree in trees:
        total += tree.predict(X).ravel()
    return total


def _release_freed_memory() -> None:
    """Hand memory freed after a load back to the OS (glibc keeps it otherwise: ~270 MB per ONNX forest)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_executors: dict[int, ThreadPoolExecutor] = {}
_cache: ModelCache | None = None
_process: gateway.RegistryProcess | None = None
_singletons_lock = threading.Lock()


def _executor(threads: int) -> ThreadPoolExecutor:
    with _singletons_lock:
        if threads not in _executors:
            _executors[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="onnx")
        return _executors[threads]


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
