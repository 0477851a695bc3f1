"""One registered version in memory: its ONNX session, its sklearn model (loaded on first use), and the engines.

Once a forest's pickle is loaded and packed for the compiled walk (``inference.compiled_forest``), the sklearn
engine is the faster one at every batch size, so the ONNX session (~4x the ONNX file in memory) is closed; an
explicit ``format=onnx`` opens it again.
"""

import atexit
import ctypes
import logging
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from core import contract
from core.errors import ApplicationError, MlflowUnavailable, UntrustedArtifact
from core.intervals import Calibration
from registry_mirror import gateway

from ..compiled_forest import CompiledForest, compile_forest
from ..forest import forest_trees, mean_and_spread, path_sums, path_table, sum_of_trees, tree_moments

logger = logging.getLogger(__name__)

# Below this many rows one onnxruntime call is cheaper than splitting the batch across threads.
ONNX_SPLIT_MIN_ROWS = 512
# The compiled walk takes ~7 µs a row on 100 full-depth trees; a thread's hand-off, ~50 µs, is worth it from here.
COMPILED_SPLIT_MIN_ROWS = 64


@dataclass
class LoadedVersion:
    """One version's ONNX session (opened eagerly) and sklearn model (loaded on first use, checksum first)."""

    name: str
    version: int
    feature_names: list[str]
    parity: dict[str, float]
    # ``None`` once closed (see the module's docstring); ``onnx()`` opens it again from ``onnx_path``.
    onnx_session: Any
    workdir: Path
    onnx_path: Path | None = None
    onnx_input: str = "input"
    # Recorded in our database when this service trained the version; empty for a version it did not train,
    # whose pickle is never loaded.
    sklearn_sha256: str = ""
    nbytes: int = 0
    source: Any = None
    # The prediction intervals' calibration; ``None`` with the reason in ``calibration_problem``.
    calibration: Calibration | None = None
    calibration_problem: str = ""
    # Called after the sklearn model adds its size to ``nbytes``: the cache re-checks its byte bound.
    on_grow: Callable[[], None] | None = None
    _sklearn: Any = None
    _compiled: CompiledForest | None = None
    _onnx_lock: threading.Lock = field(default_factory=threading.Lock)
    _sklearn_lock: threading.Lock = field(default_factory=threading.Lock)
    _prefetch: threading.Thread | None = None
    _path_tables: list | None = None
    _background_load: threading.Thread | None = None
    _background_lock: threading.Lock = field(default_factory=threading.Lock)
    # Set once the pickle is refused (untrusted, or not matching its record): the default engine stops asking.
    _sklearn_refused: bool = False

    @property
    def sklearn_loaded(self) -> bool:
        return self._sklearn is not None

    @property
    def compiled_forest(self) -> CompiledForest | None:
        """The loaded forest packed for the compiled walk; ``None`` before, or where the walk cannot serve it."""
        return self._compiled

    @property
    def sklearn_trusted(self) -> bool:
        """Whether the pickle may be loaded at all: this service trained the version and recorded its checksum."""
        return bool(self.sklearn_sha256)

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
        """sklearn predictions, to the bit; a large batch is split across ``threads``.

        A forest packed for the compiled walk runs there, its rows split. Otherwise the forest's trees are split:
        ``RandomForestRegressor.predict`` dispatches every tree through joblib and validates the input once per
        tree; summing each thread's share of ``tree_.predict`` is the same arithmetic at ~2/3 of the time.
        """
        model = self.sklearn_model()
        if self._compiled is not None:
            return self._predict_compiled(self._compiled, X, threads)
        trees = forest_trees(model)
        if trees is None or threads <= 1 or len(X) < ONNX_SPLIT_MIN_ROWS:
            return np.asarray(model.predict(X), dtype=np.float64).ravel()
        X = np.ascontiguousarray(X, dtype=np.float32)
        shares = _executor(threads).map(sum_of_trees, [trees[i::threads] for i in range(threads)], [X] * threads)
        return cast(np.ndarray, sum(shares)) / len(trees)

    @staticmethod
    def _predict_compiled(compiled: CompiledForest, X: np.ndarray, threads: int) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if threads <= 1 or len(X) < 2 * COMPILED_SPLIT_MIN_ROWS:
            return compiled.sum_of_trees(X) / compiled.n_trees
        parts = _executor(threads).map(compiled.sum_of_trees, np.array_split(X, threads))
        return np.concatenate(list(parts)) / compiled.n_trees

    def predict_sklearn_with_spread(self, X: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """sklearn predictions and the spread of the trees' predictions, in one pass over the trees."""
        trees = self._trees()
        X = np.ascontiguousarray(X, dtype=np.float32)
        compiled = self._compiled
        if threads <= 1 or len(X) < ONNX_SPLIT_MIN_ROWS:
            return mean_and_spread([compiled.tree_moments(X) if compiled else tree_moments(trees, X)])
        if compiled is not None:
            parts = list(_executor(threads).map(compiled.tree_moments, np.array_split(X, threads)))
            joined = (
                compiled.n_trees,
                np.concatenate([part[1] for part in parts]),
                np.concatenate([part[2] for part in parts]),
            )
            return mean_and_spread([joined])
        shares = [trees[i::threads] for i in range(threads)]
        return mean_and_spread(list(_executor(threads).map(tree_moments, shares, [X] * threads)))

    def contributions(self, X: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
        """The sklearn forest's base value and each feature's contribution per row (``inference.forest``)."""
        trees = self._trees()
        if self._path_tables is None:
            # Built once per version (~50 ms for 100 full-depth trees); concurrent first requests may both build.
            self._path_tables = [path_table(tree) for tree in trees]
        tables = self._path_tables
        threads = max(1, min(threads, len(trees)))
        shares = [(trees[i::threads], tables[i::threads]) for i in range(threads)]
        parts = list(_executor(threads).map(lambda share: path_sums(share[0], share[1], X), shares))
        contributions = cast(np.ndarray, sum(part[1] for part in parts))
        return sum(part[0] for part in parts) / len(trees), contributions / len(trees)

    def sklearn_ready(self) -> bool:
        """Whether the sklearn model is loaded and usable now; if not yet, it starts loading in the background.

        The default engine asks this rather than waiting: unpickling a full-depth forest takes ~1 s, while ONNX
        answers the same batch in a fraction of that, so the requests meanwhile go to ONNX.
        """
        if self._sklearn is not None:
            return True
        if not self.sklearn_trusted or self._sklearn_refused:
            return False
        # Not `_sklearn_lock`: the load holds that while it unpickles, and this must not wait for it.
        with self._background_lock:
            if self._background_load is None:
                self._background_load = threading.Thread(target=self._load_quietly, daemon=True)
                self._background_load.start()
        return False

    def sklearn_usable(self) -> bool:
        """Loads the sklearn model (waiting for it) and says whether it may serve: ``False`` for a refused pickle."""
        if not self.sklearn_trusted or self._sklearn_refused:
            return False
        try:
            self.sklearn_model()
        except UntrustedArtifact:
            self._sklearn_refused = True
            return False
        return True

    def _load_quietly(self) -> None:
        try:
            self.sklearn_usable()
        except Exception as exc:
            # MLflow unreachable, the version evicted meanwhile: a later request tries again.
            logger.warning("Could not load the sklearn model of %s version %s: %s", self.name, self.version, exc)
        finally:
            self._background_load = None

    def prefetch_sklearn(self) -> None:
        """Download the pickle in the background, so the sklearn format later needs no MLflow call."""
        if not self.sklearn_trusted:
            return
        self._prefetch = threading.Thread(target=self._fetch_pickle, kwargs={"quiet": True}, daemon=True)
        self._prefetch.start()

    def sklearn_model(self):
        """The unpickled estimator, loaded once, and only if its sha256 is the one recorded at training."""
        if self._sklearn is None:
            loaded_now = False
            with self._sklearn_lock:
                if self._sklearn is None:
                    self._sklearn = self._load_sklearn()
                    loaded_now = True
            if loaded_now and self.on_grow is not None:
                self.on_grow()
        return self._sklearn

    def onnx(self):
        """The ONNX session, opened again if it was closed."""
        session = self.onnx_session
        if session is None:
            with self._onnx_lock:
                if self.onnx_session is None:
                    if self.onnx_path is None or not self.onnx_path.exists():
                        raise MlflowUnavailable(f"Version {self.version} was evicted while loading; retry.")
                    self.onnx_session = open_onnx_session(self.onnx_path)
                session = self.onnx_session
        return session

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _trees(self) -> list:
        trees = forest_trees(self.sklearn_model())
        if trees is None:
            raise ApplicationError(
                f"Version {self.version} of {self.name!r} is not a single-output random forest: it has no spread"
                " of trees to scale intervals by, nor tree paths to explain with.",
                code="unservable_model",
                extra={"model_name": self.name, "version": self.version},
            )
        return trees

    def _load_sklearn(self):
        if not self.sklearn_trusted:
            raise UntrustedArtifact(
                f"Version {self.version} of {self.name!r} was not trained by this service: its sklearn artifact is"
                " never loaded (the onnx format serves it).",
                extra={"model_name": self.name, "version": self.version},
            )
        if self._prefetch is not None:
            self._prefetch.join()
        path = self.workdir / contract.SKLEARN_FILE
        if not path.exists():
            self._fetch_pickle(quiet=False)
        actual = _sha256(self, path)
        if self.sklearn_sha256 and actual != self.sklearn_sha256:
            # A damaged or cut-short download is fetched once more before the artifact is refused.
            logger.warning(
                "The sklearn file of %s version %s does not match its checksum; fetching it again",
                self.name,
                self.version,
            )
            path.unlink(missing_ok=True)
            self._fetch_pickle(quiet=False)
            actual = _sha256(self, path)
        model = _load_trusted_pickle(self, path, actual)
        self.nbytes += path.stat().st_size
        trees = forest_trees(model)
        self._compiled = compile_forest(trees, model.n_features_in_) if trees else None
        if self._compiled is not None:
            # The default engine no longer needs the session; a request running on it keeps it until it is done.
            with self._onnx_lock:
                self.onnx_session = None
        release_freed_memory()
        return model

    def _fetch_pickle(self, *, quiet: bool) -> None:
        try:
            self.source.model_version_fetch(
                name=self.name, version=self.version, files=[contract.SKLEARN_FILE], dst=str(self.workdir)
            )
        except Exception as exc:
            # Also when the version was evicted (its directory removed) while the file was on its way.
            if quiet:
                logger.warning(
                    "Could not prefetch the sklearn file of %s version %s: %s", self.name, self.version, exc
                )
            elif isinstance(exc, ApplicationError):
                raise
            else:
                raise MlflowUnavailable(f"Could not fetch the sklearn file of version {self.version}; retry.") from exc

    def _run_onnx(self, X: np.ndarray) -> np.ndarray:
        return self.onnx().run(None, {self.onnx_input: X})[0].ravel()


def open_onnx_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread per call: small requests are the common case, and large ones are split across threads
    # by `predict_onnx` instead of paying onnxruntime's thread-pool hand-off on every request.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _load_trusted_pickle(loaded: LoadedVersion, path: Path, actual: str):
    import cloudpickle

    if not loaded.sklearn_sha256 or loaded.sklearn_sha256 != actual:
        # Unpickling runs code: only artifacts this service produced (and recorded) are loaded.
        raise UntrustedArtifact(
            f"Version {loaded.version} of {loaded.name!r}: the sklearn artifact does not match the checksum"
            " recorded at training; refusing to load it.",
            extra={"expected_sha256": loaded.sklearn_sha256, "actual_sha256": actual},
        )
    with open(path, "rb") as handle:
        return cloudpickle.load(handle)


def _sha256(loaded: LoadedVersion, path: Path) -> str:
    try:
        return gateway.file_sha256(path)
    except OSError as exc:
        raise MlflowUnavailable(f"Version {loaded.version} was evicted while loading; retry.") from exc


def release_freed_memory() -> None:
    """Hand memory freed after a load back to the OS (glibc keeps it otherwise: ~270 MB per ONNX forest)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()
_root: Path | None = None


def workdir_root() -> Path:
    """This process's directory for downloaded model files, removed when the process exits."""
    global _root
    with _executors_lock:
        if _root is None or not _root.exists():
            _root = Path(tempfile.mkdtemp(prefix=f"mds-serving-{os.getpid()}-"))
            atexit.register(shutil.rmtree, _root, ignore_errors=True)
        return _root


def _executor(threads: int) -> ThreadPoolExecutor:
    with _executors_lock:
        if threads not in _executors:
            _executors[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="onnx")
        return _executors[threads]
