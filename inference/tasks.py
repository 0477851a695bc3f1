"""Celery entry points of serving's monitoring (daily, by beat) and live trials: thin wrappers around the services."""

import logging

from celery import shared_task
from celery.exceptions import Reject
from celery.signals import worker_ready

from core.retries import TransientFaultTask

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def monitoring_reports_record_task() -> None:
    """Record the last day's drift and live performance of every version that served predictions in it."""
    from .monitoring import monitoring_reports_record

    monitoring_reports_record()


@shared_task(acks_late=True, ignore_result=True)
def prediction_log_prune_task() -> None:
    """Delete logged predictions older than ``MDS_PREDICTION_LOG_DAYS`` days."""
    from .monitoring import prediction_log_prune

    prediction_log_prune()


@shared_task(acks_late=True, ignore_result=True)
def trial_evaluate_task(trial_id: int) -> None:
    """Evaluate a running trial after feedback reached it (and decide, as its policy says)."""
    from .trials.services import trial_evaluate

    trial_evaluate(trial_id=trial_id)


@shared_task(acks_late=True, ignore_result=True)
def trials_evaluate_task() -> None:
    """Evaluate every running trial (beat)."""
    from .trials.services import trials_evaluate_running

    trials_evaluate_running()


class BatchTask(TransientFaultTask):
    """A batch step: transient faults retried as every job's are (``core.retries``); anything else leaves the rows
    as they are, for the sweeper."""


@shared_task(ignore_result=True)
def batch_model_warm_task(model_name: str, number: int, model_format: str) -> None:
    """Load a version a batch job is about to need (sent while its upload is stored; a hint, never retried)."""
    from .batch.services import model_warm

    model_warm(model_name, number, model_format)


@shared_task(base=BatchTask, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def batch_job_plan_task(job_id: int) -> None:
    from .batch.services import batch_job_plan

    batch_job_plan(job_id=job_id)


class BatchChunkTask(BatchTask):
    def retry(self, *args, **kwargs):
        try:
            return super().retry(*args, **kwargs)
        except Reject:
            # The broker could not take the retry either: the sweeper sends the chunk once it is back.
            from .batch.services import batch_chunk_undispatched

            (chunk_id,) = self.request.args or ()
            batch_chunk_undispatched(chunk_id=chunk_id)
            raise


@shared_task(base=BatchChunkTask, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def batch_chunk_execute_task(self, chunk_id: int) -> None:
    from .batch.services import batch_chunk_execute

    batch_chunk_execute(chunk_id=chunk_id, heartbeat=not self.request.is_eager)


@shared_task(base=BatchTask, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def batch_job_join_task(job_id: int) -> None:
    from .batch.services import batch_job_join

    batch_job_join(job_id=job_id)


@shared_task(ignore_result=True)
def batch_jobs_sweep_task() -> None:
    """Re-send lost plan, chunk and join messages and take back chunks whose worker is gone (beat runs it)."""
    from .batch.services import batch_jobs_sweep

    batch_jobs_sweep()


@worker_ready.connect
def _sweep_as_the_worker_starts(sender=None, **kwargs) -> None:
    # Chunks a dead predecessor on this machine held resume now, not once their heartbeat is stale.
    try:
        batch_jobs_sweep_task.delay()
    except Exception as exc:  # the worker starts regardless; beat sweeps soon anyway
        logger.warning("Could not queue the batch sweeper at worker start: %s", exc)
