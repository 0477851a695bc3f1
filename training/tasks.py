"""Celery entry points for training: thin wrappers that call the services by job id."""

from celery import Task, shared_task

from core.errors import MlflowUnavailable


class TrainingTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Retries are exhausted or the error is final: the job must not stay RUNNING forever.
        from .services import training_job_fail

        training_job_fail(job_id=args[0], code=getattr(exc, "code", "internal_error"), message=str(exc))


@shared_task(
    base=TrainingTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(MlflowUnavailable,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    ignore_result=True,
)
def training_job_execute_task(self, job_id: int) -> None:
    from .services import training_job_execute

    training_job_execute(job_id=job_id)
