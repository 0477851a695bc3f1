"""Dataset series and retraining: append CSVs to a model's series, retrain on (a trailing window of) it.

A series (``DatasetSeries``) is a model's training data over time: datasets appended in time order, each checked
as ``/train`` checks a file and against the series (same columns, no row older than its end). Its first segment
is the dataset that trained the model's newest version, taken the first time the series is needed, so a model
trained by ``/train`` starts a series without sending its data again.

A retraining joins the segments' rows (a trailing window of them, by timestamp) into one stored dataset, a block
at a time, and queues an ordinary training job on it with the last version's parameters: backtest, ONNX,
registration, retries and leases are the training's own. The job records why it started (``trigger``) and which
rows of which datasets it trained on (``lineage``, also a tag of the MLflow run and version); its version becomes
the challenger (``registry_mirror.services.model_challenger_set``), never the champion. One retraining per model
at a time: while one is queued or running, another is refused (409) or, started by a policy, skipped.

A policy's trigger is kept as a ``RetrainRequest`` in the transaction that fired it, then queued: the task, or
failing that the schedule's beat task, starts the retraining and deletes the request in one transaction, so a
trigger survives a broker that was down, a process killed before its task ran and a dependency down at the start.
"""

import json
import logging
import tempfile
from datetime import datetime
from typing import IO, Any, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.durations import duration_parse
from core.errors import ApplicationError, Conflict, NotFound, Unavailable
from core.faults import unavailable
from registry_mirror import selectors as mirror_selectors
from registry_mirror.models import RegisteredModel
from registry_mirror.services import model_training_check, retrain_policy_schedule_claim

from .. import ml
from ..models import DatasetSeries, RetrainRequest, SeriesSegment, TrainingJob
from ..series_io import segment_scan, segments_join
from ..uploads import StagedUpload, upload_stage
from .bounds import training_params_bound
from .datasets import _file_delete_quietly, dataset_create, dataset_inspect, training_job_create

logger = logging.getLogger(__name__)

ACTIVE = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)
# Longest lineage tag written to MLflow (its tag values are capped); the job keeps the whole lineage.
LINEAGE_TAG_MAX_CHARS = 4000
# Starts of a kept trigger that may fail with no dependency down (a fault of MDS's own) before it is dropped.
RETRAIN_START_ATTEMPTS = 5


def series_get(*, name: str) -> DatasetSeries | None:
    return DatasetSeries.objects.filter(model_name=name).first()


def series_segments(*, series: DatasetSeries) -> list[SeriesSegment]:
    return list(series.segments.select_related("dataset").order_by("position"))


def series_end(series: DatasetSeries) -> datetime | None:
    """The newest timestamp of the series (rows with a target)."""
    ends = [segment.last_timestamp for segment in series.segments.all() if segment.last_timestamp is not None]
    return max(ends) if ends else None


def _base_job(name: str) -> TrainingJob | None:
    """The job that trained the model's newest version MDS trained."""
    return (
        TrainingJob.objects.select_related("dataset", "created_by")
        .filter(model_name=name, status=TrainingJob.Status.SUCCEEDED)
        .order_by("-registered_version", "-pk")
        .first()
    )


def _scan_stored(dataset, **options):
    with dataset.file.open("rb") as handle:
        return segment_scan(handle, max_columns=settings.MDS_MAX_COLUMNS, **options)


def _series_locked(*, name: str, user, base: TrainingJob | None, target: str, timestamp: str) -> DatasetSeries:
    """``name``'s series, locked for this transaction; made if missing, seeded with ``base``'s dataset if given
    (else its columns come from the first append, with ``target``/``timestamp``)."""
    series = DatasetSeries.objects.select_for_update().filter(model_name=name).first()
    if series is not None:
        return series
    if base is not None:
        target, timestamp = base.target_column, base.timestamp_column
    try:
        with transaction.atomic():
            series = DatasetSeries(model_name=name, target_column=target, timestamp_column=timestamp, created_by=user)
            series.full_clean()
            series.save()
    except IntegrityError:
        # Another request made it first: wait for its lock.
        return DatasetSeries.objects.select_for_update().get(model_name=name)
    if base is not None:
        scan = _scan_stored(base.dataset, target=target, timestamp=timestamp)
        series.columns = scan.columns
        series.save(update_fields=["columns", "updated_at"])
        _segment_save(series=series, dataset=base.dataset, scan=scan, user=base.created_by, from_job=base)
        logger.info("Series of %r starts with dataset %s (job %s)", name, base.dataset_id, base.pk)
    return series


def _segment_save(*, series: DatasetSeries, dataset, scan, user, from_job: TrainingJob | None = None):
    position = series.segments.count()
    segment = SeriesSegment(
        series=series,
        dataset=dataset,
        position=position,
        source=SeriesSegment.Source.TRAINING if from_job is not None else SeriesSegment.Source.UPLOAD,
        from_job=from_job,
        n_rows=scan.n_rows,
        first_timestamp=scan.first_timestamp,
        last_timestamp=scan.last_timestamp,
        appended_by=user if user is not None and user.is_authenticated else None,
    )
    segment.full_clean()
    segment.save()
    return segment


def series_append(
    *,
    name: str,
    file: IO[bytes] | StagedUpload,
    file_name: str,
    user,
    target: str = "target",
    timestamp: str = "timestamp",
) -> SeriesSegment:
    """Check ``file`` whole and append it to ``name``'s series (made and seeded first if the model has none).

    ``target``/``timestamp`` name the columns only for a series that starts with this file (a model MDS has not
    trained yet); a seeded series has its training's. With the policy's ``on_new_data``, a retraining is queued
    once the append is committed.

    Raises:
        Forbidden: ``not_model_owner``. TooLarge: over ``MDS_TRAIN_MAX_UPLOAD_BYTES``.
        TableError: ``column_mismatch`` (naming the column), ``rows_before_series_end`` (naming the row), a bad
            cell (column and row), ``no_rows``; nothing is stored.
    """
    model_training_check(name=name, user=user)
    staged = upload_stage(file, max_bytes=settings.MDS_TRAIN_MAX_UPLOAD_BYTES)
    try:
        with transaction.atomic():
            series = _series_locked(name=name, user=user, base=_base_job(name), target=target, timestamp=timestamp)
            staged.file.seek(0)
            scan = segment_scan(
                staged.file,
                target=series.target_column,
                timestamp=series.timestamp_column,
                columns=series.columns or None,
                not_before=series_end(series),
                max_columns=settings.MDS_MAX_COLUMNS,
            )
            if not series.columns:
                series.columns = scan.columns
                series.save(update_fields=["columns", "updated_at"])
            dataset = dataset_create(name=file_name, staged=staged, columns=scan.columns, uploaded_by=user)
            try:
                segment = _segment_save(series=series, dataset=dataset, scan=scan, user=user)
            except BaseException:
                _file_delete_quietly(dataset)
                raise
            policy = mirror_selectors.retrain_policy_of(name=name)
            if policy is not None and policy.on_new_data:
                retrain_later(name=name, trigger=TrainingJob.Trigger.NEW_DATA)
    finally:
        staged.close()
    logger.info("Appended dataset %s (%s rows) to the series of %r", dataset.pk, scan.n_rows, name)
    return segment


def retrain_start(
    *,
    name: str,
    user,
    trigger: str = TrainingJob.Trigger.MANUAL,
    window: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainingJob:
    """Queue a retraining of ``name`` on its series with the last version's parameters (``params_used`` of the
    job that trained it, ``overrides`` applied); ``window`` (default: the policy's, else the whole series) keeps
    the rows after the series' end minus it.

    Raises:
        NotFound: ``no_trained_version``: MDS trained no version of ``name`` (nothing to take parameters from).
        Conflict: ``retrain_in_progress`` naming the queued or running retraining.
        Forbidden: ``not_model_owner``. ApplicationError: ``invalid_duration``; TableError: the window holds
            too few rows (``too_few_rows``).
    """
    model_training_check(name=name, user=user)
    base = _base_job(name)
    if base is None:
        raise NotFound(
            f"MDS trained no version of {name!r}: train one with POST /train first (a retraining takes its "
            "parameters from the last version).",
            code="no_trained_version",
            extra={"model_name": name},
        )
    if window is None:
        policy = mirror_selectors.retrain_policy_of(name=name)
        window = policy.window if policy is not None else ""
    span = duration_parse(window, field="window") if window else None
    _retrain_active_check(name)
    params = _retrain_params(base, overrides or {})
    training_params_bound(params=params)
    with transaction.atomic():
        # Seeding the series (the first time) commits before the join reads it.
        series = _series_locked(
            name=name, user=user, base=base, target=base.target_column, timestamp=base.timestamp_column
        )
        segments = series_segments(series=series)
        end = series_end(series)
    after = end - span if span is not None and end is not None else None
    with tempfile.NamedTemporaryFile(prefix="mds-series-", suffix=".csv") as joined:
        join = _segments_join(series, segments, joined, after)
        lineage = {
            "series": series.pk,
            "window": window or None,
            "after": after.isoformat() if after is not None else None,
            "series_end": end.isoformat() if end is not None else None,
            "n_rows": join.n_rows,
            "segments": [part.as_dict() for part in join.segments if part.n_rows],
        }
        joined.flush()
        # No upload ceiling: the series grew by appends that each passed it.
        staged = upload_stage(joined, max_bytes=None)
        try:
            columns = dataset_inspect(
                source=staged.file,
                target=series.target_column,
                timestamp=series.timestamp_column,
                test_size=params.test_size,
                calibration_size=params.calibration_size,
                params=params,
            )
            return _retrain_store(
                name=name,
                series=series,
                staged=staged,
                columns=columns,
                user=user,
                params=params,
                trigger=trigger,
                lineage=lineage,
                file_name=f"{name}-series{'-' + window if window else ''}.csv",
            )
        finally:
            staged.close()


def _segments_join(series: DatasetSeries, segments: list[SeriesSegment], out, after: datetime | None):
    handles: list[tuple[int, IO[bytes]]] = []
    try:
        for segment in segments:
            handles.append((segment.dataset_id, cast(IO[bytes], segment.dataset.file.open("rb"))))
        return segments_join(
            handles,
            out,
            columns=series.columns,
            target=series.target_column,
            timestamp=series.timestamp_column,
            after=after,
        )
    finally:
        for _, handle in handles:
            handle.close()


def _retrain_store(
    *, name: str, series: DatasetSeries, staged: StagedUpload, columns: list[str], user, file_name: str, **job
) -> TrainingJob:
    dataset = None
    try:
        with transaction.atomic():
            # The series' lock orders retrainings of one model: the second finds the first queued.
            DatasetSeries.objects.select_for_update().get(pk=series.pk)
            _retrain_active_check(name)
            dataset = dataset_create(name=file_name, staged=staged, columns=columns, uploaded_by=user)
            return training_job_create(
                dataset=dataset,
                user=user,
                model_name=name,
                target=series.target_column,
                timestamp=series.timestamp_column,
                **job,
            )
    except BaseException:
        if dataset is not None:
            _file_delete_quietly(dataset)
        raise


def _retrain_active_check(name: str) -> None:
    active = TrainingJob.objects.filter(model_name=name, status__in=ACTIVE).exclude(trigger="").order_by("pk").first()
    if active is not None:
        raise Conflict(
            f"A retraining of {name!r} is already {active.status} (job {active.pk}, started by {active.trigger}); "
            "wait for it to finish.",
            code="retrain_in_progress",
            extra={"model_name": name, "job": active.pk, "status": active.status, "trigger": active.trigger},
        )


def _retrain_params(base: TrainingJob, overrides: dict[str, Any]) -> ml.TrainingParams:
    """The parameters the base job's training used (its size bounds included), ``overrides`` on top."""
    used = {key: value for key, value in (base.params_used or base.params).items() if key != "estimate"}
    known = ml.TrainingParams.__dataclass_fields__
    values = {key: value for key, value in {**base.params, **used, **overrides}.items() if key in known}
    return ml.TrainingParams(**values)


def retrain_trigger(*, name: str, trigger: str) -> TrainingJob | None:
    """Start the retraining a policy asks for; ``None`` (logged) if one is already under way or it cannot start.
    A dependency that is down (``Unavailable``, or the database's and S3's own errors) is raised: try again later.

    It runs as the model's owner (else as whoever trained its last version), so the ownership checks of any
    training apply.
    """
    base = _base_job(name)
    owner = RegisteredModel.objects.select_related("owner").filter(name=name).first()
    user = (owner.owner if owner is not None else None) or (base.created_by if base is not None else None)
    try:
        job = retrain_start(name=name, user=user, trigger=trigger)
    except Conflict as exc:
        logger.info("Not retraining %r (%s): %s", name, trigger, exc.message)
        return None
    except Unavailable:
        raise
    except ApplicationError as exc:
        logger.warning("Could not retrain %r (%s): %s", name, trigger, exc.message)
        return None
    logger.info("Retraining %r (%s): job %s", name, trigger, job.pk)
    return job


def retrain_later(*, name: str, trigger: str) -> None:
    """Keep ``trigger`` for ``name`` in the current transaction and, once it commits, queue its start on a worker
    (the join reads the whole series: not in a request or a receiver)."""
    RetrainRequest.objects.create(model_name=name, trigger=trigger)
    transaction.on_commit(lambda: _retrain_queue(name))


def _retrain_queue(name: str) -> None:
    from ..tasks import retrain_start_task

    try:
        retrain_start_task.delay(model_name=name)
    except Exception as exc:  # the broker is down: the request is kept, the schedule's beat task starts it
        logger.warning("Could not queue the retraining of %r, kept for the next schedule check: %s", name, exc)


def retrain_requested_start(*, name: str) -> TrainingJob | None:
    """Start the retraining ``name``'s kept triggers ask for, and forget them; ``None`` if there were none (another
    process holds or took them), a retraining is already under way, the policy was disabled meanwhile or it cannot
    start. A dependency that is down raises and keeps them; any other failure raises too, and counts an attempt
    (``retrain_start_failed``)."""
    try:
        with transaction.atomic():
            requests = list(RetrainRequest.objects.select_for_update(skip_locked=True).filter(model_name=name))
            if not requests:
                return None
            job = None
            if mirror_selectors.retrain_policy_of(name=name) is not None:
                job = retrain_trigger(name=name, trigger=requests[0].trigger)
            RetrainRequest.objects.filter(pk__in=[request.pk for request in requests]).delete()
    except Exception as exc:
        if unavailable(exc) is None:
            retrain_start_failed(name=name, error=exc)
        raise
    return job


def retrain_start_failed(*, name: str, error: Exception) -> None:
    """Count a failed start against ``name``'s kept triggers; drop them after ``RETRAIN_START_ATTEMPTS``. A start
    that meets a dependency down never counts: an outage may last longer than any number of checks."""
    requests = RetrainRequest.objects.filter(model_name=name)
    try:
        requests.update(attempts=F("attempts") + 1, last_error=f"{type(error).__name__}: {error}"[:1000])
        spent = requests.filter(attempts__gte=RETRAIN_START_ATTEMPTS)
        if spent.exists():
            spent.delete()
            logger.error(
                "Dropped the retraining of %r: its start failed %d times: %s", name, RETRAIN_START_ATTEMPTS, error
            )
    except Exception as exc:  # the triggers stay as they were, tried again at the next check
        logger.warning("Could not count the failed start of %r's retraining: %s", name, exc)


def retrain_schedule_run(*, now: datetime | None = None) -> list[TrainingJob]:
    """Keep a trigger for each policy whose schedule is due at ``now``, then start every kept trigger (what beat
    runs); the jobs started. A model whose start meets a dependency down keeps its trigger for the next run."""
    now = now or timezone.now()
    for name in mirror_selectors.retrain_policies_scheduled():
        with transaction.atomic():
            if retrain_policy_schedule_claim(name=name, now=now):
                RetrainRequest.objects.create(model_name=name, trigger=TrainingJob.Trigger.SCHEDULE)
    started = []
    for name in RetrainRequest.objects.values_list("model_name", flat=True).distinct().order_by("model_name"):
        try:
            job = retrain_requested_start(name=name)
        except Exception as exc:
            logger.warning("Could not retrain %r now: %s", name, exc, exc_info=unavailable(exc) is None)
            continue
        if job is not None:
            started.append(job)
    return started


def lineage_tag(lineage: dict[str, Any]) -> str:
    """``lineage`` as a compact JSON tag value; past ``LINEAGE_TAG_MAX_CHARS`` the segments shrink to their
    dataset ids and row counts (the job keeps the whole)."""
    text = json.dumps(lineage, separators=(",", ":"), default=str)
    if len(text) <= LINEAGE_TAG_MAX_CHARS:
        return text
    short = {
        **{key: value for key, value in lineage.items() if key != "segments"},
        "segments": [[part["dataset"], part["n_rows"]] for part in lineage.get("segments", [])][:200],
        "truncated": True,
    }
    return json.dumps(short, separators=(",", ":"), default=str)[:LINEAGE_TAG_MAX_CHARS]
