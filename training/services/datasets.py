"""Accepting a training request: check the CSV, store it with its job, and send the job once committed."""

import contextlib
import logging
import uuid
from typing import IO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, InterfaceError, OperationalError, transaction

from core import faults
from core.tabular import TableError, file_header, read_csv
from registry_mirror.services import model_training_check, model_training_claim

from .. import ml
from ..models import Dataset, TrainingJob
from ..uploads import StagedUpload, upload_stage
from .bounds import training_params_bound
from .dispatch import training_job_dispatch
from .leases import database_retry

logger = logging.getLogger(__name__)


def dataset_check_rows(n_columns: int) -> int:
    """Rows the web process checks: ``MDS_TRAIN_CHECK_ROWS``, fewer for wide files so the prefix stays a few MB
    of cells (the worker checks the rest)."""
    return max(ml.MIN_ROWS, min(settings.MDS_TRAIN_CHECK_ROWS, CHECK_CELLS // max(1, n_columns)))


# Cells parsed in the web process at most: 10 000 rows of 100 columns.
CHECK_CELLS = 1_000_000


def dataset_inspect(
    *,
    source: IO[bytes],
    target: str,
    timestamp: str,
    test_size: float,
    calibration_size: float = 0.2,
    params: ml.TrainingParams | None = None,
) -> list[str]:
    """Run the training's checks on the first rows of the seekable CSV ``source`` (all of them when the file is
    no longer than ``dataset_check_rows``), so bad files are refused before anything is stored. Returns the
    columns in training order (timestamp, features, target).

    Raises:
        TableError: naming what is wrong (column, row) with the file; ``too_many_columns`` past
            ``MDS_MAX_COLUMNS`` before the file is parsed; with ``params``, ``calendar_column_clash`` and (on a
            whole file) ``backtest_too_many_folds``.
    """
    header = file_header(source, max_columns=settings.MDS_MAX_COLUMNS)
    n_check = dataset_check_rows(len(header))
    frame = read_csv(source, max_columns=settings.MDS_MAX_COLUMNS, nrows=n_check)
    # pandas stops short of ``n_check`` only at the end of the file: then every row was checked.
    whole = len(frame) < n_check
    calendar = params is not None and params.calendar
    try:
        data = ml.prepare_data(frame, target=target, timestamp=timestamp, calendar=calendar)
    except TableError as exc:
        # Rows with a target may all come later: only the whole file can have too few of them.
        if whole or exc.code != "too_few_rows":
            raise
    else:
        if whole:
            n_window = ml.chronological_split(len(data.y), test_size)
            ml.calibration_split(n_window, calibration_size)
            if params is not None:
                ml.backtests.folds_for(params, n_window)
    features = [column for column in frame.columns if column not in (timestamp, target)]
    return [timestamp, *features, target]


@transaction.atomic
def dataset_create(*, name: str, staged: StagedUpload, columns: list[str], uploaded_by) -> Dataset:
    """Store the file and its row; the row is checked before the file is written, and a failed insert removes
    the file again, so storage never keeps a file without its row. The file goes to storage in chunks (S3:
    a multipart upload)."""
    dataset = Dataset(
        original_name=name[:255],
        sha256=staged.sha256,
        size_bytes=staged.size_bytes,
        n_rows=staged.n_rows,
        n_columns=len(columns),
        columns=columns,
        uploaded_by=uploaded_by,
    )
    dataset.full_clean(exclude=["file"])
    staged.file.seek(0)
    dataset.file.save(name, staged.file, save=False)
    try:
        dataset.save()
    except BaseException:
        _file_delete_quietly(dataset)
        raise
    return dataset


def training_job_start(
    *,
    file: IO[bytes] | StagedUpload,
    file_name: str,
    user: AbstractBaseUser | None,
    model_name: str,
    target: str,
    timestamp: str,
    params: ml.TrainingParams,
) -> TrainingJob:
    """Check and store the uploaded CSV, create a queued job, and send it to a worker once committed.

    ``file`` is read in chunks, never whole: an upload streamed in by ``DatasetUploadHandler`` is already
    measured, anything else is measured on a copy. Its first rows are checked here, the rest by the worker.
    A job stored is a job accepted: if the broker cannot take its message, the dispatcher sends it later.

    The first training of a new ``model_name`` makes ``user`` its owner; a model that is not theirs to train
    (``registry_mirror.services.access``) is refused before the file is read.

    Raises:
        Forbidden: ``not_model_owner``: ``user`` may not train new versions of ``model_name``; nothing is stored.
        ModelTooLarge: the forest ``params`` ask for would pass a size ceiling whatever the rows; nothing is read.
        TooLarge: the file is over ``MDS_TRAIN_MAX_UPLOAD_BYTES``; nothing is stored.
        TableError: the file cannot train a model; nothing is stored.
        StorageUnavailable, DatabaseUnavailable: the file or its rows could not be stored; nothing is kept.
    """
    # Before the file: the bound that holds whatever the rows (the worker checks again with the data's own size).
    training_params_bound(params=params)
    model_training_check(name=model_name, user=user)
    staged = upload_stage(file, max_bytes=settings.MDS_TRAIN_MAX_UPLOAD_BYTES)
    try:
        columns = dataset_inspect(
            source=staged.file,
            target=target,
            timestamp=timestamp,
            test_size=params.test_size,
            calibration_size=params.calibration_size,
            params=params,
        )
        return _training_job_store(
            staged=staged,
            file_name=file_name,
            columns=columns,
            user=user,
            model_name=model_name,
            target=target,
            timestamp=timestamp,
            params=params,
        )
    finally:
        staged.close()


def _training_job_store(
    *, staged: StagedUpload, file_name: str, columns: list[str], user, **job_fields
) -> TrainingJob:
    dataset = None
    committing = False
    try:
        with transaction.atomic():
            dataset = dataset_create(name=file_name, staged=staged, columns=columns, uploaded_by=user)
            job = training_job_create(dataset=dataset, user=user, **job_fields)
            committing = True
        return job
    except BaseException as exc:
        if dataset is not None:
            if committing and isinstance(exc, OperationalError | InterfaceError):
                # The connection broke while committing: the rows may or may not be there.
                committed, stored = _committed_job(dataset)
                if stored is not None:
                    return stored
                if not committed:
                    # Unknown: keep the file, a stored job may need it (an orphan file costs less than a lost job).
                    broken = faults.unavailable(exc)
                    assert broken is not None  # a broken connection is a database fault
                    raise broken from exc
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
    *,
    dataset: Dataset,
    user,
    model_name: str,
    target: str,
    timestamp: str,
    params: ml.TrainingParams,
    trigger: str = "",
    lineage: dict | None = None,
) -> TrainingJob:
    """Store a queued job of ``user``'s, claiming ``model_name`` for them if nobody holds it yet (``Forbidden`` if
    it is not theirs to train), and send it to a worker once committed. A retraining gives its ``trigger`` and
    the ``lineage`` of its dataset (``services.series``)."""
    model_training_claim(name=model_name, user=user)
    job = TrainingJob(
        dataset=dataset,
        model_name=model_name,
        target_column=target,
        timestamp_column=timestamp,
        params=params.as_dict(),
        celery_task_id=str(uuid.uuid4()),
        created_by=user,
        trigger=trigger,
        lineage=lineage or {},
    )
    job.full_clean()
    job.save()
    transaction.on_commit(lambda: training_job_dispatch(job_id=job.pk, task_id=job.celery_task_id))
    return job


def _file_delete_quietly(dataset: Dataset) -> None:
    with contextlib.suppress(Exception):
        # The storage may be what failed; a file left behind costs space, never correctness.
        dataset.file.delete(save=False)
