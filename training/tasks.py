"""Celery entry points for training: thin wrappers that call the services by job id."""

import logging

from celery import shared_task
from celery.exceptions import Reject
from celery.signals import worker_ready
from django.db import DatabaseError

from core.retries import TransientFaultTask

logger = logging.getLogger(__name__)


class TrainingTask(TransientFaultTask):
    """A training job's task: transient faults retried as every job's are (``core.retries``); a retry the broker
    refuses leaves the job to the dispatcher, and a final failure is recorded on the job."""

    def retry(self, *args, **kwargs):
        try:
            return super().retry(*args, **kwargs)
        except Reject:
            # The broker could not take the retry either: the dispatcher sends the job once it is back.
            from .services import training_job_undispatched

            (job_id,) = self.request.args or ()
            training_job_undispatched(job_id=job_id)
            raise

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Retries are exhausted or the error is final: the job must not stay RUNNING forever.
        from .services import training_job_fail

        try:
            training_job_fail(job_id=args[0], code=getattr(exc, "code", "internal_error"), message=str(exc))
        except DatabaseError as error:
            # Not recorded is not stuck: the job's heartbeat goes stale and the dispatcher re-queues it.
            logger.warning("Could not record the failure of training job %s: %s", args[0], error)


@shared_task(base=TrainingTask, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def training_job_execute_task(self, job_id: int) -> None:
    from .services import training_job_execute

    training_job_execute(job_id=job_id, heartbeat=not self.request.is_eager)


@shared_task(ignore_result=True)
def training_jobs_dispatch_task() -> None:
    """Send jobs that have no message on its way and re-queue those whose execution is gone (beat runs it)."""
    from .services import training_jobs_dispatch

    training_jobs_dispatch()


@shared_task(ignore_result=True)
def retrain_start_task(model_name: str, trigger: str = "") -> None:
    """Start the retraining a policy's kept triggers ask for (skipped while one of the model's is under way)."""
    from .services.series import retrain_requested_start, retrain_trigger

    if trigger:  # a message queued before triggers were kept (RetrainRequest) names its trigger
        retrain_trigger(name=model_name, trigger=trigger)
    else:
        retrain_requested_start(name=model_name)


@shared_task(ignore_result=True)
def retrain_schedule_task() -> None:
    """Start the retrainings whose policy's schedule is due (beat runs it every MDS_RETRAIN_SCHEDULE_INTERVAL)."""
    from .services.series import retrain_schedule_run

    retrain_schedule_run()


@worker_ready.connect
def _dispatch_as_the_worker_starts(sender=None, **kwargs) -> None:
    # A job its dead predecessor on this machine was running resumes now, not once its heartbeat is stale.
    try:
        training_jobs_dispatch_task.delay()
    except Exception as exc:  # the worker starts regardless; beat runs the dispatcher soon anyway
        logger.warning("Could not queue the dispatcher at worker start: %s", exc)
