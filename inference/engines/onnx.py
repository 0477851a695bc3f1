"""The ONNX engine: a session over a version's ONNX file, which may be closed to free its memory (~4x the file)
and is opened again when asked for."""

import threading
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import MlflowUnavailable

from .pool import SPLIT_MIN_ROWS, executor


class OnnxEngine:
    format = "onnx"

    def __init__(self, path: Path, session: Any):
        self.path = path
        # The file's size, whether or not the session is open: what the cache's byte bound counts.
        self.nbytes = path.stat().st_size
        self.input_name = session.get_inputs()[0].name
        self._session = session
        self._lock = threading.Lock()

    @property
    def in_memory(self) -> bool:
        return self._session is not None

    def predict(self, X: np.ndarray, threads: int) -> np.ndarray:
        """ONNX predictions; a large batch is split across ``threads`` calls that run in parallel."""
        if threads <= 1 or len(X) < SPLIT_MIN_ROWS:
            return self._run(X)
        parts = executor(threads).map(self._run, np.array_split(X, threads))
        return np.concatenate(list(parts))

    def session(self):
        """The session, opened again if it was closed."""
        session = self._session
        if session is None:
            with self._lock:
                if self._session is None:
                    if not self.path.exists():
                        raise MlflowUnavailable("The version was evicted while loading; retry.")
                    self._session = open_session(self.path)
                session = self._session
        return session

    def close(self) -> None:
        """Drop the session; a request running on it keeps it until it is done."""
        with self._lock:
            self._session = None

    def _run(self, X: np.ndarray) -> np.ndarray:
        return self.session().run(None, {self.input_name: X})[0].ravel()


def open_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread per call: small requests are the common case, and large ones are split across threads
    # by `OnnxEngine.predict` instead of paying onnxruntime's thread-pool hand-off on every request.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
