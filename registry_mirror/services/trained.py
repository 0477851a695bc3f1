"""Registering the versions this service trains, anchored in our database.

The sha256 of the artifacts is written to ``TrainedVersion`` before the files are uploaded, so the record never
depends on what MLflow says afterwards; serving checks every file it loads against it.
"""

import logging
from collections.abc import Callable

from django.db import transaction

from core import contract

from .. import gateway
from ..models import TrainedVersion
from .aliases import model_challenger_set, model_first_version_promote, save_checked

logger = logging.getLogger(__name__)


def trained_version_register(
    *,
    job_key: str,
    model_name: str,
    model: gateway.TrainedModel,
    user=None,
    still_owner: Callable[[], None] | None = None,
    run_id: str | None = None,
    challenger: bool = False,
) -> gateway.RegisteredVersion:
    """Register ``model`` in MLflow as a new version of ``model_name`` (idempotent per ``job_key``) and record it.

    A new model's first version also gets the serving alias (``MDS_SERVING_ALIAS``); later versions never move it.
    With ``challenger`` (a retraining) the version gets the challenger alias instead, whatever its number.
    ``still_owner`` raises if the caller may no longer register (``gateway.model_version_register``); ``run_id``
    is the run the training opened (``gateway.model_run_start``).

    Raises:
        MlflowUnavailable: MLflow could not be reached; a retry with the same ``job_key`` finds what was done.
    """

    def record_checksums(checksums: dict[str, str]) -> None:
        _trained_version_checksums_record(
            job_key=job_key,
            name=model_name,
            sklearn_sha256=checksums[contract.SKLEARN_SHA256_TAG],
            onnx_sha256=checksums[contract.ONNX_SHA256_TAG],
            intervals_sha256=checksums.get(contract.INTERVALS_SHA256_TAG, ""),
        )

    registered = gateway.model_version_register(
        job_key=job_key,
        model_name=model_name,
        model=model,
        before_upload=record_checksums,
        still_owner=still_owner,
        run_id=run_id,
    )
    _trained_version_number_record(job_key=job_key, name=model_name, version=registered.version)
    if challenger:
        model_challenger_set(name=model_name, version=registered.version, user=user)
    else:
        model_first_version_promote(name=model_name, version=registered.version, user=user)
    return registered


@transaction.atomic
def _trained_version_checksums_record(
    *, job_key: str, name: str, sklearn_sha256: str, onnx_sha256: str, intervals_sha256: str
) -> None:
    # A retried job that uploads again replaces the checksums of its earlier, unregistered attempt.
    row = TrainedVersion.objects.select_for_update().filter(job_key=job_key).first() or TrainedVersion(job_key=job_key)
    row.name, row.version = name, None
    row.sklearn_sha256, row.onnx_sha256, row.intervals_sha256 = sklearn_sha256, onnx_sha256, intervals_sha256
    save_checked(row)


@transaction.atomic
def _trained_version_number_record(*, job_key: str, name: str, version: int) -> None:
    row = TrainedVersion.objects.select_for_update().filter(job_key=job_key).first()
    if row is None:
        # Uploaded by an attempt that predates these records: served as ONNX only, never unpickled.
        logger.warning("No checksums recorded for %s version %s (job %s); it is not trusted", name, version, job_key)
        return
    if row.version == version:
        return
    # A model deleted and created again in MLflow numbers its versions from 1 again: an older row of the same
    # number describes files that are gone (an adopted one, which has no job to be kept for, is forgotten).
    stale = TrainedVersion.objects.filter(name=name, version=version).exclude(pk=row.pk)
    stale.filter(origin=TrainedVersion.Origin.ADOPTED).delete()
    stale.update(version=None)
    row.version = version
    save_checked(row)
