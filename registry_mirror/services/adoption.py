"""Adopting a version registered directly in MLflow, so that MDS serves it: checked, hashed and recorded here.

A version MDS did not train is never served on MLflow's word. A maintainer adopts it: its ONNX file must open in
onnxruntime with one input, its signature must name the features the model's served versions take, and the
sha256 of the file is recorded in ``TrainedVersion``, so serving later loads exactly the file that was checked.
Its pickle is never trusted: an adopted version serves through ONNX only.
"""

import logging
import tempfile
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import contract
from core.errors import ApplicationError, Conflict, NotFound

from .. import gateway, selectors
from ..models import TrainedVersion
from .aliases import model_name_check, save_checked

logger = logging.getLogger(__name__)


def model_version_adopt(*, name: str, version: int, user) -> tuple[TrainedVersion, bool]:
    """Serve ``version`` of ``name``, registered outside MDS, once its ONNX file passes the checks.

    Idempotent: a version MDS already serves (trained or adopted) is returned as it is.

    Returns:
        The version's record, and whether this call adopted it.

    Raises:
        NotFound: no such model or version in MLflow.
        ApplicationError: ``unservable_model``, the version has no ONNX file, or one that onnxruntime cannot open,
            or not exactly one input, or no input signature.
        Conflict: ``signature_mismatch``, its features differ from those of the versions MDS serves.
        MlflowUnavailable: MLflow could not be reached; nothing was recorded.
    """
    model_name_check(name)
    existing = selectors.trained_version_get(name=name, version=version)
    if existing is not None:
        return existing, False
    with tempfile.TemporaryDirectory(prefix="mds-adopt-") as tmp:
        features, onnx_sha256 = _onnx_checked(name, version, tmp)
    expected = _served_features(name)
    if expected is not None and expected != features:
        raise Conflict(
            f"Version {version} of {name!r} takes the features {features}, not the {expected} of the versions MDS "
            "serves; it cannot be adopted as a version of this model.",
            code="signature_mismatch",
            extra={"model_name": name, "version": version, "features": features, "expected_features": expected},
        )
    record = TrainedVersion(
        name=name,
        version=version,
        onnx_sha256=onnx_sha256,
        origin=TrainedVersion.Origin.ADOPTED,
        adopted_by=user if user is not None and user.is_authenticated else None,
        adopted_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            save_checked(record)
    except IntegrityError:
        # Adopted by a concurrent request meanwhile: the same outcome.
        return TrainedVersion.objects.get(name=name, version=version), False
    logger.info("%s adopted %s version %s (onnx sha256 %s)", user, name, version, onnx_sha256)
    return record, True


def _onnx_checked(name: str, version: int, dst: str) -> tuple[list[str], str]:
    """The version's signature (feature names) and the sha256 of its ONNX file, once the file opened for serving."""
    extra = {"model_name": name, "version": version}
    try:
        fetched = gateway.model_version_fetch(name=name, version=version, files=[contract.ONNX_FILE], dst=dst)
    except ApplicationError:
        raise
    except Exception as exc:
        # A version without the file (or without an MLmodel): MLflow's stores report it in words of their own.
        if selectors.model_version_list(name=name).filter(version=version).exists() or isinstance(exc, OSError):
            raise ApplicationError(
                f"Version {version} of {name!r} has no {contract.ONNX_FILE} to serve; it cannot be adopted.",
                code="unservable_model",
                extra=extra,
            ) from exc
        raise NotFound(f"Model {name!r} has no version {version} in MLflow.", extra=extra) from exc
    path = Path(fetched["paths"][contract.ONNX_FILE])
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ApplicationError(
            f"Version {version} of {name!r}: its {contract.ONNX_FILE} does not load in onnxruntime "
            f"({str(exc)[:200]}).",
            code="unservable_model",
            extra=extra,
        ) from exc
    if len(session.get_inputs()) != 1 or not fetched["feature_names"]:
        raise ApplicationError(
            f"Version {version} of {name!r} has no input signature or not one ONNX input; it cannot be served.",
            code="unservable_model",
            extra=extra,
        )
    return list(fetched["feature_names"]), gateway.file_sha256(path)


def _served_features(name: str) -> list[str] | None:
    """The features of the newest version of ``name`` that MDS serves and MLflow still has; ``None`` if none."""
    for served in selectors.served_versions_of(name=name)[:3]:
        # A served version has its number: MLflow registered it.
        assert served.version is not None
        with tempfile.TemporaryDirectory(prefix="mds-adopt-") as tmp:
            try:
                return list(
                    gateway.model_version_fetch(name=name, version=served.version, files=[], dst=tmp)["feature_names"]
                )
            except NotFound:
                continue
    return None
