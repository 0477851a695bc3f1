"""Starting, running and finishing training jobs."""

import hashlib
import logging
import time
import uuid
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from core import contract
from core.errors import ApplicationError, MlflowUnavailable
from core.tabular import read_csv
from registry_mirror import gateway
from registry_mirror.services import trained_version_register
from registry_mirror.tasks import registry_mirror_sync_task

from . import ml
from .models import Dataset, TrainingJob

logger = logging.getLogger(__name__)


def dataset_inspect(*, raw: bytes, target: str, timestamp: str, test_size: float) -> ml.PreparedData:
    """Run every check a training would run on the data, so bad files are refused before anything is stored.

    Raises:
        TableError: naming what is wrong (column, row) with the file; ``too_many_columns`` past
            ``MDS_MAX_COLUMNS`` before the file is parsed.
    """
    frame = read_csv(raw, max_columns=settings.MDS_MAX_COLUMNS)
    data = ml.prepare_data(frame, target=target, timestamp=timestamp)
    ml.chronological_split(len(data.y), test_size)
    return data


@transaction.atomic
def dataset_create(*, name: str, raw: bytes, n_rows: int, columns: list[str], uploaded_by) -> Dataset:
    """Store the file and its row; the row is checked before the file is written, and a failed insert removes
    the file again, so storage never keeps a file without its row."""
    dataset = Dataset(
        original_name=name[:255],
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        n_rows=n_rows,
        n_columns=len(columns),
        columns=columns,
        uploaded_by=uploaded_by,
    )
    dataset.full_clean(exclude=["file"])
    dataset.file.save(name, ContentFile(raw), save=False)
    try:
        dataset.save()
    except BaseException:
        dataset.file.delete(save=False)
        raise
    return dataset


def training_job_start(
    *,
    file: IO[bytes],
    file_name: str,
    user: AbstractBaseUser | None,
    model_name: str,
    target: str,
    timestamp: str,
    params: ml.TrainingParams,
) -> TrainingJob:
    """Check and store the uploaded CSV, create a queued job, and enqueue its training once committed.

    Raises:
        TableError: the file cannot train a model; nothing is stored.
    """
    raw = file.read()
    data = dataset_inspect(raw=raw, target=target, timestamp=timestamp, test_size=params.test_size)
    n_rows = len(data.y) + data.dropped_missing_target
    columns = [timestamp, *data.feature_names, target]
    dataset = None
    try:
        with transaction.atomic():
            dataset = dataset_create(name=file_name, raw=raw, n_rows=n_rows, columns=columns, uploaded_by=user)
            return training_job_create(
                dataset=dataset, user=user, model_name=model_name, target=target, timestamp=timestamp, params=params
            )
    except BaseException:
        # The rows were rolled back: the stored file must go too.
        if dataset is not None:
            dataset.file.delete(save=False)
        raise


@transaction.atomic
def training_job_create(
    *, dataset: Dataset, user, model_name: str, target: str, timestamp: str, params: ml.TrainingParams
) -> TrainingJob:
    from .tasks import training_job_execute_task

    job = TrainingJob(
        dataset=dataset,
        model_name=model_name,
        target_column=target,
        timestamp_column=timestamp,
        params=params.as_dict(),
        celery_task_id=str(uuid.uuid4()),
        created_by=user,
    )
    job.full_clean()
    job.save()
    transaction.on_commit(lambda: training_job_execute_task.apply_async(args=[job.pk], task_id=job.celery_task_id))
    return job


def training_job_execute(*, job_id: int) -> TrainingJob:
    """Train, convert, log and register the model of a queued or interrupted job; a finished job is left alone.

    Data problems fail the job for good. ``MlflowUnavailable`` propagates so the task can retry; the job stays
    RUNNING meanwhile and the retry reuses anything MLflow already registered for it.
    """
    job = _training_job_claim(job_id=job_id)
    if job is None:
        return TrainingJob.objects.get(pk=job_id)
    try:
        with job.dataset.file.open("rb") as handle:
            frame = read_csv(handle)
        data = ml.prepare_data(frame, target=job.target_column, timestamp=job.timestamp_column)
        _training_job_stage(job, TrainingJob.Stage.TRAINING)
        params = ml.TrainingParams(**job.params)
        result = ml.train(data, params)
        _training_job_stage(job, TrainingJob.Stage.REGISTERING)
        registered = trained_version_register(
            job_key=str(job.key),
            model_name=job.model_name,
            model=_trained_model(job, result, params, data),
            user=job.created_by,
        )
    except MlflowUnavailable:
        raise
    except ApplicationError as exc:
        return training_job_fail(job_id=job.pk, code=exc.code, message=exc.message)
    except Exception as exc:
        logger.exception("Training job %s failed", job.pk)
        training_job_fail(job_id=job.pk, code="internal_error", message=f"{type(exc).__name__}: {exc}")
        raise
    return _training_job_succeed(job_id=job.pk, result=result, registered=registered)


@transaction.atomic
def _training_job_claim(*, job_id: int) -> TrainingJob | None:
    job = TrainingJob.objects.select_for_update().select_related("dataset").get(pk=job_id)
    if job.is_finished:
        logger.info("Training job %s is already %s; nothing to do", job.pk, job.status)
        return None
    if job.attempts >= settings.MDS_TRAIN_MAX_ATTEMPTS:
        # A job whose worker dies every time (out of memory, say) is redelivered forever otherwise.
        job.status = TrainingJob.Status.FAILED
        job.error_code = "too_many_attempts"
        job.error_message = f"The training was started {job.attempts} times without finishing; giving up."
        job.finished_at = timezone.now()
        job.full_clean()
        job.save()
        return None
    job.status = TrainingJob.Status.RUNNING
    job.stage = TrainingJob.Stage.LOADING
    job.attempts += 1
    job.started_at = job.started_at or timezone.now()
    job.full_clean()
    job.save()
    return job


def _training_job_stage(job: TrainingJob, stage: str) -> None:
    job.stage = stage
    TrainingJob.objects.filter(pk=job.pk).update(stage=stage, updated_at=timezone.now())


def _trained_model(
    job: TrainingJob, result: ml.TrainingResult, params: ml.TrainingParams, data: ml.PreparedData
) -> gateway.TrainedModel:
    import pandas as pd

    from .plots import training_figures
    from .profile import feature_profile

    # The training rows come first in time order; the holdout is the rest (ml.chronological_split).
    n_train = result.counts["n_train"]

    example = pd.DataFrame(result.X_test[:5].astype("float64"), columns=result.feature_names)
    return gateway.TrainedModel(
        estimator=result.estimator,
        onnx_model=result.onnx_model,
        input_example=example,
        params={**params.as_dict(), "target": job.target_column, "timestamp": job.timestamp_column},
        metrics=result.metrics | {key: float(value) for key, value in result.counts.items()},
        tags={
            contract.DATASET_SHA256_TAG: job.dataset.sha256,
            "mds.dataset_size_bytes": str(job.dataset.size_bytes),
            "mds.dataset_rows": str(job.dataset.n_rows),
            "mds.dataset_name": job.dataset.original_name,
            "mds.training_job": str(job.pk),
        },
        figures=training_figures(
            y_test=result.y_test,
            y_pred=result.y_pred_test,
            feature_names=result.feature_names,
            importances=result.estimator.feature_importances_,
            timestamps=data.timestamps.iloc[n_train:].dt.tz_convert(None).to_numpy(),
        ),
        # What drift is measured against: the rows the model learnt from, not the holdout.
        profile=feature_profile(data.X[:n_train], result.feature_names),
    )


@transaction.atomic
def _training_job_succeed(
    *, job_id: int, result: ml.TrainingResult, registered: gateway.RegisteredVersion
) -> TrainingJob:
    job = TrainingJob.objects.select_for_update().get(pk=job_id)
    job.status = TrainingJob.Status.SUCCEEDED
    job.stage = TrainingJob.Stage.DONE
    job.metrics = result.metrics
    job.counts = result.counts
    job.mlflow_run_id = registered.run_id
    job.mlflow_model_id = registered.model_id
    job.registered_version = registered.version
    job.finished_at = timezone.now()
    job.full_clean()
    job.save()
    # The new version shows in the admin's registry mirror without waiting for the periodic sync.
    model_name = job.model_name
    transaction.on_commit(lambda: registry_mirror_sync_task.delay(model_name=model_name))
    return job


@transaction.atomic
def training_job_fail(*, job_id: int, code: str, message: str) -> TrainingJob:
    """Mark a job FAILED with its error; a job that already finished keeps its outcome."""
    job = TrainingJob.objects.select_for_update().get(pk=job_id)
    if job.is_finished:
        return job
    job.status = TrainingJob.Status.FAILED
    job.error_code = code or "internal_error"
    job.error_message = message or "The training failed without a message."
    job.finished_at = timezone.now()
    job.full_clean()
    job.save()
    return job


def training_job_wait(*, job_id: int, timeout: float, poll_interval: float = 0.25) -> TrainingJob:
    """The job once it has finished, or as it stands after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = TrainingJob.objects.select_related("dataset").get(pk=job_id)
        if job.is_finished or time.monotonic() >= deadline:
            return job
        time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))


def trained_models(job: TrainingJob) -> list[dict[str, Any]]:
    """The versions a job registered, in the shape clients of the original service read."""
    if job.status != TrainingJob.Status.SUCCEEDED:
        return []
    return [
        {
            "name": job.model_name,
            "version": job.registered_version,
            "run_id": job.mlflow_run_id,
            "model_uri": f"models:/{job.model_name}/{job.registered_version}",
            "formats": ["onnx", "sklearn"],
        }
    ]
