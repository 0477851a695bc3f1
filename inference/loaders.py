"""Registered versions loaded into memory, once per process, kept in a small LRU cache."""

import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from registry_mirror import gateway
from registry_mirror.errors import ApplicationError


@dataclass
class LoadedVersion:
    name: str
    version: int
    feature_names: list[str]
    onnx_session: Any
    sklearn_model: Any = None
    tags: dict[str, str] = field(default_factory=dict)

    def predict(self, X: np.ndarray, model_format: str) -> np.ndarray:
        if model_format == "sklearn":
            return np.asarray(self.sklearn_model.predict(X), dtype=np.float64).ravel()
        return self.onnx_session.run(None, {self.onnx_session.get_inputs()[0].name: X})[0].ravel()


class ModelCache:
    """Keeps the most recently used versions; concurrent first requests for one version load it once."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], LoadedVersion] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def get(self, name: str, version: int) -> LoadedVersion:
        key = (name, version)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            loaded = load_version(name=name, version=version)
            with self._lock:
                self._entries[key] = loaded
                self._loading.pop(key, None)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return loaded

    def loaded(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def load_version(*, name: str, version: int) -> LoadedVersion:
    """Download a version and load both formats; the sklearn pickle only if its sha256 is the one we recorded."""
    import onnxruntime as ort

    downloaded = gateway.model_version_download(name=name, version=version)
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.MDS_ONNX_THREADS
        session = ort.InferenceSession(
            str(downloaded.path / gateway.ONNX_FILE), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return LoadedVersion(
            name=name,
            version=version,
            feature_names=downloaded.feature_names,
            onnx_session=session,
            sklearn_model=_load_trusted_sklearn(downloaded),
            tags=downloaded.tags,
        )
    finally:
        shutil.rmtree(downloaded.path, ignore_errors=True)


def _load_trusted_sklearn(downloaded: gateway.DownloadedVersion):
    import mlflow.sklearn

    expected = downloaded.tags.get(gateway.SKLEARN_SHA256_TAG)
    actual = gateway.file_sha256(downloaded.path / gateway.SKLEARN_FILE)
    if not expected or expected != actual:
        # Unpickling runs code: only artifacts this service produced (and recorded) are loaded.
        raise ApplicationError(
            f"Version {downloaded.version} of {downloaded.name!r}: the sklearn artifact does not match the checksum"
            " recorded at training; refusing to load it.",
            code="untrusted_artifact",
            extra={"expected_sha256": expected, "actual_sha256": actual},
        )
    return mlflow.sklearn.load_model(str(downloaded.path))


_cache: ModelCache | None = None


def model_cache() -> ModelCache:
    global _cache
    if _cache is None:
        _cache = ModelCache(max_entries=settings.MDS_MODEL_CACHE_SIZE)
    return _cache
