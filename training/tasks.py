"""Celery entry points for training: thin wrappers that call the services by job id."""

import logging

from celery import Task, shared_task
from celery.exceptions import Reject
from celery.signals import worker_ready
from django.conf import settings
from django.db import DatabaseError

from core.errors import Unavailable

logger = logging.getLogger(__name__)


class TrainingTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Retries are exhausted or the error is final: the job must not stay RUNNING forever.
        from .services import training_job_fail

        try:
            training_job_fail(job_id=args[0], code=getattr(exc, "code", "internal_error"), message=str(exc))
        except DatabaseError as error:
            # Not recorded is not stuck: the job's heartbeat goes stale and the dispatcher re-queues it.
            logger.warning("Could not record the failure of training job %s: %s", args[0], error)


def retry_countdown(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: MDS_RETRY_BACKOFF doubling, at most MDS_RETRY_BACKOFF_MAX."""
    return min(settings.MDS_RETRY_BACKOFF_MAX, settings.MDS_RETRY_BACKOFF * 2**retries)


@shared_task(
    base=TrainingTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # Counted against MDS_TRAIN_RETRIES below, read when a retry is due rather than when this module loads.
    max_retries=None,
    ignore_result=True,
)
def training_job_execute_task(self, job_id: int) -> None:
    from .services import training_job_execute, training_job_undispatched

    try:
        training_job_execute(job_id=job_id, heartbeat=not self.request.is_eager)
    except Unavailable as exc:
        if self.request.retries >= settings.MDS_TRAIN_RETRIES:
            raise
        try:
            raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
        except Reject:
            # The broker could not take the retry either: the dispatcher sends the job once it is back.
            training_job_undispatched(job_id=job_id)
            raise


@shared_task(ignore_result=True)
def training_jobs_dispatch_task() -> None:
    """Send jobs that have no message on its way and re-queue those whose execution is gone (beat runs it)."""
    from .services import training_jobs_dispatch

    training_jobs_dispatch()


@worker_ready.connect
def _dispatch_as_the_worker_starts(sender=None, **kwargs) -> None:
    # A job its dead predecessor on this machine was running resumes now, not once its heartbeat is stale.
    try:
        training_jobs_dispatch_task.delay()
    except Exception as exc:  # the worker starts regardless; beat runs the dispatcher soon anyway
        logger.warning("Could not queue the dispatcher at worker start: %s", exc)
