"""Loading one registered version: its ONNX file (checked against the checksum our database recorded at training),
its session, and its interval calibration; the sklearn pickle is fetched and loaded later (``LoadedVersion``)."""

import logging
import shutil
import tempfile
import time
from pathlib import Path

from core import contract
from core.errors import ApplicationError, UntrustedArtifact
from core.intervals import Calibration
from registry_mirror import gateway, selectors

from .versions import LoadedVersion, open_onnx_session, release_freed_memory, workdir_root

logger = logging.getLogger(__name__)


def load_version(*, name: str, version: int, source) -> LoadedVersion:
    """Download a version's ONNX file and open its session; the sklearn pickle is fetched and loaded later.

    The checksums come from our database (``TrainedVersion``), never from MLflow: the ONNX file must match the
    record made when this service trained the version, or when a maintainer adopted it (else
    ``UntrustedArtifact``); a version with no record is not loaded at all (``version_not_adopted``). An adopted
    version's pickle is never loaded: it serves as ONNX only.
    """
    started = time.monotonic()
    trained = selectors.trained_version_get(name=name, version=version)
    if trained is None:
        # Raises: NotFound, or Conflict (version_not_adopted) for a version registered directly in MLflow.
        selectors.served_version_number(name=name, reference=str(version))
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
            optional=(contract.INTERVALS_FILE,),
        )
        fetched_at = time.monotonic()
        onnx_path = Path(fetched["paths"][contract.ONNX_FILE])
        session = open_onnx_session(onnx_path)
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
        return LoadedVersion(
            name=name,
            version=version,
            feature_names=fetched["feature_names"],
            onnx_input=session.get_inputs()[0].name,
            parity=fetched["metrics"],
            onnx_session=session,
            onnx_path=onnx_path,
            workdir=workdir,
            sklearn_sha256=trained.sklearn_sha256,
            nbytes=onnx_path.stat().st_size + (Path(intervals_path).stat().st_size if intervals_path else 0),
            source=source,
            calibration=calibration,
            calibration_problem=problem,
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


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
