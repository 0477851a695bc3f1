"""Loading one registered version, in one place: its ONNX file (checked against the checksum our database recorded
at training) and engine, its interval calibration, and later its sklearn pickle (``PickleLoad``): fetched in the
background once the version is published, loaded when an engine needs it."""

import atexit
import ctypes
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core import contract
from core.errors import ApplicationError, MlflowUnavailable, UntrustedArtifact
from core.intervals import Calibration
from registry_mirror import gateway, selectors

from ..engines import CompiledForestEngine, Engine, OnnxEngine, SklearnEngine
from ..engines.onnx import open_session
from .versions import LoadedVersion

logger = logging.getLogger(__name__)


def load_version(*, name: str, version: int, source) -> LoadedVersion:
    """Download a version's ONNX file and open its engine; the sklearn pickle is fetched and loaded later.

    The checksums come from our database (``TrainedVersion``), never from MLflow: the ONNX file must match the
    record made when this service trained the version, or when a maintainer adopted it (else
    ``UntrustedArtifact``); a version with no record is not loaded at all (``version_not_adopted``). An adopted
    version's pickle is never loaded: it serves as ONNX only.
    """
    started = time.monotonic()
    trained = selectors.trained_version_get(name=name, version=version)
    if trained is None:
        # Raises: NotFound, or Conflict (version_not_adopted) for a version registered directly in MLflow.
        selectors.served_version_number(name=name, reference=contract.VersionRef(number=version))
        raise selectors.version_not_adopted(name=name, version=version)
    workdir = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=workdir_root()))
    try:
        fetched = _fetch_checked(
            source,
            name,
            version,
            contract.ONNX_FILE,
            workdir,
            trained.onnx_sha256,
            optional=(contract.INTERVALS_FILE, contract.CALENDAR_FILE),
        )
        fetched_at = time.monotonic()
        onnx_path = Path(fetched["paths"][contract.ONNX_FILE])
        session = open_session(onnx_path)
        if not fetched["feature_names"] or len(session.get_inputs()) != 1:
            raise ApplicationError(
                f"Version {version} of {name!r} has no input signature or not one ONNX input; it cannot be served.",
                code="unservable_model",
                extra={"model_name": name, "version": version},
            )
        release_freed_memory()
        logger.info(
            "Loaded %s version %s: fetched in %.2f s, ONNX session in %.2f s",
            name,
            version,
            fetched_at - started,
            time.monotonic() - fetched_at,
        )
        calibration, problem = _read_calibration(name, version, fetched, trained.intervals_sha256)
        intervals_path = fetched["paths"].get(contract.INTERVALS_FILE)
        onnx = OnnxEngine(onnx_path, session)
        return LoadedVersion(
            name=name,
            version=version,
            feature_names=fetched["feature_names"],
            parity=fetched["metrics"],
            workdir=workdir,
            onnx=onnx,
            pickle=PickleLoad(
                name=name, version=version, workdir=workdir, sha256=trained.sklearn_sha256, source=source, onnx=onnx
            ),
            calibration=calibration,
            calibration_problem=problem,
            calibration_bytes=Path(intervals_path).stat().st_size if intervals_path else 0,
            calendar_from=_read_calendar(fetched),
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


class PickleLoad:
    """A version's sklearn pickle, loaded once into its engines, and only if its sha256 is the one recorded when
    this service trained the version (unpickling runs code). Until then ``sklearn`` and ``compiled`` are ``None``.

    Once the forest is packed for the compiled walk, that engine is the faster one at every batch size, so the ONNX
    session is closed; an explicit ``format=onnx`` opens it again.
    """

    def __init__(self, *, name: str, version: int, workdir: Path, sha256: str, source, onnx: OnnxEngine):
        self.name = name
        self.version = version
        self.workdir = workdir
        # Empty for a version this service did not train: its pickle is never loaded.
        self.sha256 = sha256
        self.source = source
        self.onnx = onnx
        self.sklearn: SklearnEngine | None = None
        self.compiled: CompiledForestEngine | None = None
        # Set once the pickle is refused (untrusted, or not matching its record): the default engine stops asking.
        self.refused = False
        # Called once the engines are loaded: the cache re-checks its byte bound.
        self.on_loaded: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._prefetch: threading.Thread | None = None
        self._background: threading.Thread | None = None
        self._background_lock = threading.Lock()

    @property
    def trusted(self) -> bool:
        """Whether the pickle may be loaded at all: this service trained the version and recorded its checksum."""
        return bool(self.sha256)

    @property
    def loaded(self) -> bool:
        return self.sklearn is not None

    @property
    def loading(self) -> bool:
        """Whether a background load (``ready``) is under way."""
        return self._background is not None

    def engines(self) -> list[Engine]:
        return [engine for engine in (self.sklearn, self.compiled) if engine is not None]

    def prefetch(self) -> None:
        """Download the pickle in the background, so the sklearn format later needs no MLflow call."""
        if not self.trusted:
            return
        self._prefetch = threading.Thread(target=self._fetch, kwargs={"quiet": True}, daemon=True)
        self._prefetch.start()

    def load(self) -> SklearnEngine:
        """The pickle's engine, loading it first (and waiting for a load in progress)."""
        if self.sklearn is None:
            loaded_now = False
            with self._lock:
                if self.sklearn is None:
                    self._load()
                    loaded_now = True
            if loaded_now and self.on_loaded is not None:
                self.on_loaded()
        assert self.sklearn is not None  # loaded above, or the load raised
        return self.sklearn

    def usable(self) -> bool:
        """Loads the pickle (waiting for it) and says whether it may serve: ``False`` for a refused pickle."""
        if not self.trusted or self.refused:
            return False
        try:
            self.load()
        except UntrustedArtifact:
            self.refused = True
            return False
        return True

    def ready(self) -> bool:
        """Whether the pickle is loaded and usable now; if not yet, it starts loading in the background.

        The default engine asks this rather than waiting: unpickling a full-depth forest takes ~1 s, while ONNX
        answers the same batch in a fraction of that, so the requests meanwhile go to ONNX.
        """
        if self.sklearn is not None:
            return True
        if not self.trusted or self.refused:
            return False
        # Not `_lock`: the load holds that while it unpickles, and this must not wait for it.
        with self._background_lock:
            if self._background is None:
                self._background = threading.Thread(target=self._load_quietly, daemon=True)
                self._background.start()
        return False

    def _load_quietly(self) -> None:
        try:
            self.usable()
        except Exception as exc:
            # MLflow unreachable, the version evicted meanwhile: a later request tries again.
            logger.warning("Could not load the sklearn model of %s version %s: %s", self.name, self.version, exc)
        finally:
            self._background = None

    def _load(self) -> None:
        if not self.trusted:
            raise UntrustedArtifact(
                f"Version {self.version} of {self.name!r} was not trained by this service: its sklearn artifact is"
                " never loaded (the onnx format serves it).",
                extra={"model_name": self.name, "version": self.version},
            )
        if self._prefetch is not None:
            self._prefetch.join()
        path = self.workdir / contract.SKLEARN_FILE
        if not path.exists():
            self._fetch(quiet=False)
        actual = self._sha256(path)
        if actual != self.sha256:
            # A damaged or cut-short download is fetched once more before the artifact is refused.
            logger.warning(
                "The sklearn file of %s version %s does not match its checksum; fetching it again",
                self.name,
                self.version,
            )
            path.unlink(missing_ok=True)
            self._fetch(quiet=False)
            actual = self._sha256(path)
        sklearn = SklearnEngine(self._unpickle(path, actual), nbytes=path.stat().st_size)
        if sklearn.trees:
            self.compiled = CompiledForestEngine.packed(sklearn.trees, sklearn.model.n_features_in_)
        if self.compiled is not None:
            # The default engine no longer needs the session; a request running on it keeps it until it is done.
            self.onnx.close()
        self.sklearn = sklearn
        release_freed_memory()

    def _unpickle(self, path: Path, actual: str):
        import cloudpickle

        if self.sha256 != actual:
            # Unpickling runs code: only artifacts this service produced (and recorded) are loaded.
            raise UntrustedArtifact(
                f"Version {self.version} of {self.name!r}: the sklearn artifact does not match the checksum"
                " recorded at training; refusing to load it.",
                extra={"expected_sha256": self.sha256, "actual_sha256": actual},
            )
        with open(path, "rb") as handle:
            return cloudpickle.load(handle)

    def _fetch(self, *, quiet: bool) -> None:
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

    def _sha256(self, path: Path) -> str:
        try:
            return gateway.file_sha256(path)
        except OSError as exc:
            raise MlflowUnavailable(f"Version {self.version} was evicted while loading; retry.") from exc


def _fetch_checked(
    source, name: str, version: int, file: str, workdir: Path, expected: str | None, optional: tuple[str, ...] = ()
) -> dict:
    """Fetch ``file`` (and the ``optional`` files the version has) of a version; with an ``expected`` sha256, fetch
    once more on a mismatch, then refuse it."""
    for attempt in (1, 2):
        fetched = source.model_version_fetch(
            name=name, version=version, files=[file], optional=optional, dst=str(workdir)
        )
        if not expected:
            return fetched
        actual = gateway.file_sha256(Path(fetched["paths"][file]))
        if actual == expected:
            return fetched
        if attempt == 1:
            logger.warning(
                "The %s of %s version %s does not match its checksum; fetching it again", file, name, version
            )
    raise UntrustedArtifact(
        f"Version {version} of {name!r}: the {file} artifact does not match the checksum recorded at training;"
        " refusing to load it.",
        extra={
            "model_name": name,
            "version": version,
            "file": file,
            "expected_sha256": expected,
            "actual_sha256": actual,
        },
    )


def _read_calibration(name: str, version: int, fetched: dict, expected: str) -> tuple[Calibration | None, str]:
    """The version's interval calibration, or ``None`` and why: a file that is missing or does not match the
    checksum recorded when this service trained the version (``expected``, from our database) costs the version
    its intervals, never its predictions."""
    path = fetched["paths"].get(contract.INTERVALS_FILE)
    if path is None or not expected:
        return None, (
            f"Version {version} of {name!r} has no prediction intervals: it was trained before they existed, or"
            " not by this service."
        )
    try:
        if gateway.file_sha256(Path(path)) != expected:
            raise ValueError("the file does not match the checksum recorded at training")
        return Calibration.from_json(Path(path).read_bytes()), ""
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.error("The interval calibration of %s version %s is unusable: %s", name, version, exc)
        return None, f"The interval calibration of version {version} of {name!r} is unusable: {exc}."


def _read_calendar(fetched: dict) -> str | None:
    """The timestamp column a ``calendar=true`` version derives its calendar features from; ``None`` without."""
    path = fetched["paths"].get(contract.CALENDAR_FILE)
    if path is None:
        return None
    return str(json.loads(Path(path).read_text())["timestamp"])


def release_freed_memory() -> None:
    """Hand memory freed after a load back to the OS (glibc keeps it otherwise: ~270 MB per ONNX forest)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_root: Path | None = None
_root_lock = threading.Lock()


def workdir_root() -> Path:
    """This process's directory for downloaded model files, removed when the process exits."""
    global _root
    with _root_lock:
        if _root is None or not _root.exists():
            _root = Path(tempfile.mkdtemp(prefix=f"mds-serving-{os.getpid()}-"))
            atexit.register(shutil.rmtree, _root, ignore_errors=True)
        return _root
