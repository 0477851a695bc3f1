"""Running a training job: claim it, train, convert, log and register in MLflow, record the outcome."""

import logging
import uuid

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from core import contract, faults
from core.errors import ApplicationError, DatabaseUnavailable, JobCancelled, LeaseLost
from registry_mirror import gateway
from registry_mirror.services import model_training_claim, trained_version_register
from registry_mirror.tasks import registry_mirror_sync_task

from .. import ml
from ..models import TrainingJob
from ..reading import training_data_read
from . import transitions
from .bounds import training_params_bound
from .leases import Lease, database_retry, lease_dead_reason, this_process
from .series import lineage_tag

# A stored error is returned by every `GET /train`: its message and each text in its extra are kept this short even
# when what raised it quoted a whole input value (messages quote at most ~100 characters of one; see core.errors).
MAX_ERROR_MESSAGE_CHARS = 2000
MAX_ERROR_EXTRA_CHARS = 200

logger = logging.getLogger(__name__)


def training_job_execute(*, job_id: int, heartbeat: bool = False) -> TrainingJob:
    """Train, convert, log and register the model of a queued or interrupted job; a finished job, or one another
    live execution is running, is left alone.

    Data problems fail the job for good. A transient fault (MLflow, S3 or the database unreachable) releases the
    job back to the queue and propagates as ``Unavailable`` so the task retries it; the retry reuses anything
    MLflow already registered for the job. With ``heartbeat`` (on a worker) a thread keeps the job's heartbeat
    fresh while it runs.
    """
    job = database_retry(lambda: _training_job_claim(job_id=job_id))
    if job is None:
        return database_retry(lambda: TrainingJob.objects.get(pk=job_id))
    interval = settings.MDS_HEARTBEAT_INTERVAL if heartbeat else None
    with Lease(job, heartbeat_interval=interval) as lease:
        run = _TrainingRun(job)
        try:
            data = _training_job_load(job)
            requested = ml.TrainingParams(**job.params)
            if requested.calendar:
                data = ml.with_calendar(data, job.timestamp_column)
            params, estimate = training_params_bound(
                params=requested, n_samples=len(data.y), n_features=len(data.feature_names)
            )
            used = params.as_dict() | {"estimate": estimate.as_dict()}
            lease.stage(TrainingJob.Stage.TRAINING, progress=_LOADED, params_used=used)
            # Checked again where the job runs: it may have waited in the queue while its model was shared away
            # (or was queued before models had owners), and again after the minutes of training; a refusal fails the
            # job for good.
            model_training_claim(name=job.model_name, user=job.created_by)
            run.start(params)
            lease.stage(TrainingJob.Stage.TRAINING, mlflow_run_id=run.run_id)
            result = ml.train(data, params, lambda done: lease.progress(_LOADED + (_TRAINED - _LOADED) * done))
            # Without its calendar features where `auto` found they did not help.
            data = result.data or data
            model_training_claim(name=job.model_name, user=job.created_by)
            lease.stage(TrainingJob.Stage.REGISTERING, progress=_TRAINED, backtest=result.backtest_record(params))
            # From here the gateway ends the run, FINISHED with the version or FAILED.
            run_id, run.run_id = run.run_id, None
            registered = trained_version_register(
                job_key=str(job.key),
                model_name=job.model_name,
                model=_trained_model(job, result, params, data),
                user=job.created_by,
                still_owner=lease.confirm,
                run_id=run_id,
                # A retrained version is a challenger: only the gate makes it the champion.
                challenger=bool(job.trigger),
            )
        except JobCancelled as exc:
            logger.info("Stopping: %s", exc)
            run.end("KILLED")
            return database_retry(lambda: TrainingJob.objects.get(pk=job_id))
        except LeaseLost as exc:
            logger.warning("Stopping: %s", exc)
            return job
        except Exception as exc:
            run.end("FAILED")
            unavailable = faults.unavailable(exc)
            if unavailable is not None:
                logger.warning("Training job %s will be retried: %s (%s)", job.pk, unavailable.message, exc)
                lease.release()
                if unavailable is exc:
                    raise
                raise unavailable from exc
            if isinstance(exc, ApplicationError):
                return _training_job_fail_recorded(job, lease, exc.code, exc.message, exc.extra)
            logger.exception("Training job %s failed", job.pk)
            _training_job_fail_recorded(job, lease, "internal_error", f"{type(exc).__name__}: {exc}")
            raise
        try:
            return database_retry(lambda: _training_job_succeed(job_id=job.pk, result=result, registered=registered))
        except (OperationalError, InterfaceError) as exc:
            # MLflow holds the version; the retry finds it by the job key and records it then.
            lease.release()
            raise DatabaseUnavailable(f"Could not record training job {job.pk}'s version: {exc}") from exc


def _training_job_load(job: TrainingJob) -> ml.PreparedData:
    """The job's dataset, checked whole: the upload's check covered only its first rows. A bad row fails the
    job naming its column and row; the stored file stays for inspection."""
    with job.dataset.file.open("rb") as handle:
        return training_data_read(
            handle, target=job.target_column, timestamp=job.timestamp_column, max_columns=settings.MDS_MAX_COLUMNS
        )


# Progress at the end of loading and checking the dataset, and once trained and converted; registering is the rest.
_LOADED, _TRAINED = 0.1, 0.9


class _TrainingRun:
    """The MLflow run of one attempt at a job, opened once its parameters are known; ended FAILED or KILLED if
    the attempt registers nothing (best effort: MLflow may be what failed)."""

    def __init__(self, job: TrainingJob):
        self.job = job
        self.run_id: str | None = None

    def start(self, params: ml.TrainingParams) -> None:
        self.run_id = gateway.model_run_start(
            job_key=str(self.job.key),
            model_name=self.job.model_name,
            params=_run_params(self.job, params),
        )

    def end(self, status: str) -> None:
        if self.run_id is None:
            return
        try:
            gateway.model_run_end(run_id=self.run_id, status=status)
        except Exception as exc:  # a retry marks runs its job left RUNNING as FAILED (gateway._version_for_job)
            logger.warning("Could not end MLflow run %s as %s: %s", self.run_id, status, exc)
        self.run_id = None


def _run_params(job: TrainingJob, params: ml.TrainingParams) -> dict:
    return {**params.as_dict(), "target": job.target_column, "timestamp": job.timestamp_column}


def _training_job_claim(*, job_id: int) -> TrainingJob | None:
    """Take the job for this execution, or ``None`` if it is finished, run by a live execution, or failed now for
    having started too often."""
    # Read again whenever the job moved between the read and the claim (another claim won, say).
    while True:
        job = TrainingJob.objects.select_related("dataset").get(pk=job_id)
        if job.is_finished:
            logger.info("Training job %s is already %s; nothing to do", job.pk, job.status)
            return None
        reason = None
        if job.status == TrainingJob.Status.RUNNING:
            reason = lease_dead_reason(job)
            if reason is None:
                # A duplicate message (re-sent by the dispatcher, redelivered by the broker): one execution is enough.
                logger.info("Training job %s is running in %s; leaving it there", job.pk, job.claimed_by)
                return None
        if job.attempts >= settings.MDS_TRAIN_MAX_ATTEMPTS:
            # A job whose worker dies every time (out of memory, say) is redelivered forever otherwise.
            message = f"The training was started {job.attempts} times without finishing; giving up."
            if transitions.job_fail(job, code="too_many_attempts", message=message):
                return None
            continue
        claimed_by = job.claimed_by
        if transitions.job_claim(job, by=this_process()):
            if reason is not None:
                logger.warning("Taking over training job %s from %s: %s", job.pk, claimed_by, reason)
            return job


def _trained_model(
    job: TrainingJob, result: ml.TrainingResult, params: ml.TrainingParams, data: ml.PreparedData
) -> gateway.TrainedModel:
    import json

    import pandas as pd

    from .. import conformal
    from ..plots import training_figures
    from ..profile import feature_profile

    # The training rows come first in time order; the holdout is the rest (ml.chronological_split).
    n_train = result.counts["n_train"]

    example = pd.DataFrame(result.X_test[:5].astype("float64"), columns=result.feature_names)
    tags = {contract.ESTIMATOR_TAG: result.estimator_name}
    files = {contract.INTERVALS_FILE: result.intervals.to_json()}
    if data.calendar_from is not None:
        tags[contract.CALENDAR_TAG] = data.calendar_from
        files[contract.CALENDAR_FILE] = json.dumps(
            {"format": 1, "timestamp": data.calendar_from, "features": result.feature_names[-8:]}
        ).encode()
    version_tags = {}
    if job.trigger:
        version_tags = {
            contract.RETRAIN_TRIGGER_TAG: job.trigger,
            contract.LINEAGE_TAG: lineage_tag(job.lineage),
        }
        tags |= version_tags
    backtests = [result.backtest.as_dict()] if result.backtest is not None else []
    backtests += [board.as_dict() for board in result.leaderboard if board is not result.backtest]
    return gateway.TrainedModel(
        estimator=result.estimator,
        onnx_model=result.onnx_model,
        input_example=example,
        params=_run_params(job, params),
        metrics=result.metrics | {key: float(value) for key, value in result.counts.items()},
        # One value per fold (step 1..K): MLflow charts them against the fold.
        metric_steps={
            f"backtest_fold_{metric}": [fold[metric] for fold in result.backtest.folds]
            for metric in ("mae", "rmse", "r2")
        }
        if result.backtest is not None
        else {},
        tags=tags
        | {
            contract.DATASET_SHA256_TAG: job.dataset.sha256,
            "mds.dataset_size_bytes": str(job.dataset.size_bytes),
            "mds.dataset_rows": str(job.dataset.n_rows),
            "mds.dataset_name": job.dataset.original_name,
            "mds.training_job": str(job.pk),
            contract.INTERVAL_METHOD_TAG: result.intervals.calibration.method,
        },
        files=files,
        figures=training_figures(
            y_test=result.y_test,
            y_pred=result.y_pred_test,
            feature_names=result.feature_names,
            importances=result.importances,
            timestamps=data.timestamps.iloc[n_train:].dt.tz_convert(None).to_numpy(),
            band=conformal.holdout_half_widths(result.intervals.calibration, result.estimator, result.X_test, 0.9),
            backtests=backtests,
        ),
        # What drift is measured against: the rows the model learnt from, not the holdout.
        profile=feature_profile(data.X[:n_train], result.feature_names),
        version_tags=version_tags,
    )


def _training_job_succeed(
    *, job_id: int, result: ml.TrainingResult, registered: gateway.RegisteredVersion
) -> TrainingJob:
    succeeded = transitions.job_succeed(
        job_id,
        metrics=result.metrics,
        counts=result.counts,
        run_id=registered.run_id,
        model_id=registered.model_id,
        version=registered.version,
    )
    # Not succeeded now: another execution of this job recorded it first, the same version found by the job key.
    job = TrainingJob.objects.get(pk=job_id)
    if succeeded:
        # The new version shows in the admin's registry mirror without waiting for the periodic sync.
        transaction.on_commit(lambda: _registry_mirror_sync_later(job.model_name))
    return job


def _registry_mirror_sync_later(model_name: str) -> None:
    try:
        registry_mirror_sync_task.delay(model_name=model_name)
    except Exception as exc:  # the broker is down: the job succeeded all the same, the periodic sync catches up
        logger.warning("Could not queue the registry mirror's sync of %s: %s", model_name, exc)


def _training_job_fail_recorded(
    job: TrainingJob, lease: Lease, code: str, message: str, extra: dict | None = None
) -> TrainingJob:
    try:
        return database_retry(
            lambda: training_job_fail(job_id=job.pk, code=code, message=message, extra=extra, claim=lease.claim)
        )
    except (OperationalError, InterfaceError) as exc:
        # Not recorded is not lost: the retry runs the job again and records its failure then.
        raise DatabaseUnavailable(f"Could not record training job {job.pk}'s failure: {exc}") from exc


def training_job_fail(
    *, job_id: int, code: str, message: str, extra: dict | None = None, claim: uuid.UUID | None = None
) -> TrainingJob:
    """Mark a job FAILED with its error. A job that already finished keeps its outcome, and so does one that
    another live execution (holding a claim other than ``claim``) is running."""
    code = code or "internal_error"
    message = _bounded(message, MAX_ERROR_MESSAGE_CHARS) or "The training failed without a message."
    extra = _bounded(extra or {}, MAX_ERROR_EXTRA_CHARS)
    # Read again whenever the job moved between the read and the failure (a heartbeat, say).
    while True:
        job = TrainingJob.objects.get(pk=job_id)
        if job.is_finished:
            return job
        if job.status == TrainingJob.Status.RUNNING and job.claim != claim and lease_dead_reason(job) is None:
            logger.info("Not failing training job %s: %s runs it now", job.pk, job.claimed_by)
            return job
        if transitions.job_fail(job, code=code, message=message, extra=extra):
            return job


def _bounded(value, limit: int):
    """``value`` with every text in it cut to ``limit`` characters (``…`` marks a cut) and every list to 100 items."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 1] + "…"
    if isinstance(value, dict):
        return {_bounded(str(key), limit): _bounded(item, limit) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(item, limit) for item in value[:100]]
    return value
