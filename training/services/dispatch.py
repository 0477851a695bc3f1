"""Getting training jobs to a worker: the job row is the outbox, a message to the broker only its notice.

A job is committed first and its message sent after the commit; if the broker cannot take it then, the job stays
queued with no ``dispatched_at`` and the request still answers 202. The dispatcher (``training_jobs_dispatch``,
on beat every ``MDS_DISPATCH_INTERVAL`` seconds and once as each worker starts) sends such jobs again, re-queues
running jobs whose execution is gone (``leases``), and re-sends jobs whose message has not started them after
``MDS_DISPATCH_RESEND_AFTER`` seconds. A job may so get two messages; its claim lets one execution run it.
In embedded mode with background training, "sending" hands the job to the web process's training thread
(``embedded``), and each web process runs the dispatcher itself.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from ..models import TrainingJob
from . import transitions
from .embedded import background_training, training_job_submit
from .leases import lease_dead_reason

logger = logging.getLogger(__name__)


def training_job_dispatch(*, job_id: int, task_id: str) -> bool:
    """Send the job's message; ``False`` (and the job left for the dispatcher) if the broker cannot take it now.

    In embedded mode with background training the job goes to this process's training thread instead (``embedded``).
    """
    from ..tasks import training_job_execute_task

    if background_training():
        _dispatched_mark(job_id, timezone.now())
        training_job_submit(job_id=job_id)
        return True
    try:
        training_job_execute_task.apply_async(args=(job_id,), task_id=task_id)
    except Exception as exc:  # whatever the broker client raises, the job is stored: the dispatcher sends it later
        logger.warning("Could not send training job %s to the broker (%s); it stays queued", job_id, exc)
        _dispatched_mark(job_id, None)
        return False
    _dispatched_mark(job_id, timezone.now())
    return True


def training_job_undispatched(*, job_id: int) -> None:
    """Record that the job's message did not reach the broker (a retry it could not take), for the dispatcher."""
    _dispatched_mark(job_id, None)


def _dispatched_mark(job_id: int, at) -> None:
    try:
        transitions.job_dispatch_mark(job_id, at=at)
    except DatabaseError as exc:
        # Unrecorded, the job is sent once more later: a duplicate message is harmless.
        logger.warning("Could not record the dispatch of training job %s: %s", job_id, exc)


def training_jobs_dispatch(*, resend_queued: bool = False) -> dict[str, list[int]]:
    """Re-queue running jobs whose execution is gone, then send every queued job that has no message on its way
    (with ``resend_queued``, every queued job: an embedded process starting knows no earlier message survived).

    Returns the ids of the jobs re-queued, sent, and not sent (the broker refused; tried again next time).
    """
    now = timezone.now()
    requeued = _abandoned_jobs_requeue(now)
    due = _due_jobs_take(now, requeued, resend_queued)
    sent: list[int] = []
    unsent: list[int] = []
    for job_id, task_id in due:
        (sent if training_job_dispatch(job_id=job_id, task_id=task_id) else unsent).append(job_id)
    if requeued or due:
        logger.info("Dispatcher: re-queued %s, sent %s, not sent %s", requeued, sent, unsent)
    return {"requeued": requeued, "sent": sent, "unsent": unsent}


def _abandoned_jobs_requeue(now) -> list[int]:
    requeued = []
    for job in TrainingJob.objects.filter(status=TrainingJob.Status.RUNNING):
        reason = lease_dead_reason(job, now)
        # A job that moved since it was read (claimed, beating again, finished) is not re-queued.
        if reason is None or not transitions.job_requeue(job):
            continue
        logger.warning(
            "Re-queuing training job %s (attempt %s in %s): %s", job.pk, job.attempts, job.claimed_by, reason
        )
        requeued.append(job.pk)
    return requeued


def _due_jobs_take(now, requeued: list[int], resend_queued: bool = False) -> list[tuple[int, str]]:
    """The queued jobs to send now, marked as sent so that a dispatcher running at the same time skips them."""
    never_sent = Q(dispatched_at__isnull=True, updated_at__lt=now - timedelta(seconds=settings.MDS_DISPATCH_GRACE))
    not_started = Q(dispatched_at__lt=now - timedelta(seconds=settings.MDS_DISPATCH_RESEND_AFTER))
    due_now = Q() if resend_queued else Q(pk__in=requeued) | never_sent | not_started
    due = (
        TrainingJob.objects.filter(due_now, status=TrainingJob.Status.QUEUED)
        .order_by("created_at")
        .values_list("pk", "celery_task_id", "dispatched_at")
    )
    return [
        (job_id, task_id)
        for job_id, task_id, dispatched_at in due
        if transitions.job_dispatch_take(job_id, dispatched_at=dispatched_at, at=now)
    ]
