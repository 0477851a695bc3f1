"""Accepting a training request: check the CSV, store it with its job, and send the job once committed."""

import contextlib
import hashlib
import logging
import uuid
from typing import IO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import DatabaseError, InterfaceError, OperationalError, transaction

from core import faults
from core.tabular import read_csv

from .. import ml
from ..models import Dataset, TrainingJob
from .dispatch import training_job_dispatch
from .leases import database_retry

logger = logging.getLogger(__name__)


def dataset_inspect(
    *, raw: bytes, target: str, timestamp: str, test_size: float, calibration_size: float = 0.2
) -> ml.PreparedData:
    """Run every check a training would run on the data, so bad files are refused before anything is stored.

    Raises:
        TableError: naming what is wrong (column, row) with the file; ``too_many_columns`` past
            ``MDS_MAX_COLUMNS`` before the file is parsed.
    """
    frame = read_csv(raw, max_columns=settings.MDS_MAX_COLUMNS)
    data = ml.prepare_data(frame, target=target, timestamp=timestamp)
    ml.calibration_split(ml.chronological_split(len(data.y), test_size), calibration_size)
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
        _file_delete_quietly(dataset)
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
    """Check and store the uploaded CSV, create a queued job, and send it to a worker once committed.

    A job stored is a job accepted: if the broker cannot take its message, the dispatcher sends it later.

    Raises:
        TableError: the file cannot train a model; nothing is stored.
        StorageUnavailable, DatabaseUnavailable: the file or its rows could not be stored; nothing is kept.
    """
    raw = file.read()
    data = dataset_inspect(
        raw=raw,
        target=target,
        timestamp=timestamp,
        test_size=params.test_size,
        calibration_size=params.calibration_size,
    )
    n_rows = len(data.y) + data.dropped_missing_target
    columns = [timestamp, *data.feature_names, target]
    dataset = None
    committing = False
    try:
        with transaction.atomic():
            dataset = dataset_create(name=file_name, raw=raw, n_rows=n_rows, columns=columns, uploaded_by=user)
            job = training_job_create(
                dataset=dataset, user=user, model_name=model_name, target=target, timestamp=timestamp, params=params
            )
            committing = True
        return job
    except BaseException as exc:
        if dataset is not None:
            if committing and isinstance(exc, OperationalError | InterfaceError):
                # The connection broke while committing: the rows may or may not be there.
                committed, job = _committed_job(dataset)
                if job is not None:
                    return job
                if not committed:
                    # Unknown: keep the file, a stored job may need it (an orphan file costs less than a lost job).
                    raise faults.unavailable(exc) from exc
            # The rows were rolled back: the stored file must go too.
            _file_delete_quietly(dataset)
        unavailable = faults.unavailable(exc)
        if unavailable is None or unavailable is exc:
            raise
        raise unavailable from exc


def _committed_job(dataset: Dataset) -> tuple[bool, TrainingJob | None]:
    """Whether the database could tell, and the job stored with ``dataset``'s file if the commit went through.

    Its message was never sent (that happens after a commit the request saw fail): the dispatcher sends it.
    """
    try:
        job = database_retry(
            lambda: TrainingJob.objects.select_related("dataset").filter(dataset__file=dataset.file.name).first(),
            attempts=2,
        )
    except DatabaseError:
        return False, None
    return True, job


@transaction.atomic
def training_job_create(
    *, dataset: Dataset, user, model_name: str, target: str, timestamp: str, params: ml.TrainingParams
) -> TrainingJob:
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
    transaction.on_commit(lambda: training_job_dispatch(job_id=job.pk, task_id=job.celery_task_id))
    return job


def _file_delete_quietly(dataset: Dataset) -> None:
    with contextlib.suppress(Exception):
        # The storage may be what failed; a file left behind costs space, never correctness.
        dataset.file.delete(save=False)
