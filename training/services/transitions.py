"""Every change of a training job's state, each one conditional update that says whether it happened.

::

    QUEUED ──claim──▶ RUNNING ──succeed──▶ SUCCEEDED        QUEUED or RUNNING ──fail──▶ FAILED
       ▲                 │                                QUEUED or RUNNING ──cancel──▶ CANCELLED
       └─release/requeue─┘                                  (not while registering its version)

A claim also takes a RUNNING job whose execution is gone (attempts + 1). While RUNNING, the execution holding the
claim beats (heartbeat, stage, progress). The outbox marks (``dispatched_at``) change a QUEUED job only.

Each update names the state it moves from in its filter, so of two processes making the same move only one does:
the database updates a row once at a time and re-checks the filter of the second update against the row the first
left (PostgreSQL's READ COMMITTED; SQLite writes one at a time). The loser's update matches no row and returns
``False``: the caller reads the job again and decides anew.

Where the decision needs what the database cannot tell (is the lease's process alive?), the caller reads the job,
decides, and passes the job as read: the update then applies only while nothing moved the job since (``_as_read``).
"""

import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core import events

from ..models import TrainingJob

Status, Stage = TrainingJob.Status, TrainingJob.Stage
_UNFINISHED = (Status.QUEUED, Status.RUNNING)


def job_claim(job: TrainingJob, *, by: str) -> bool:
    """QUEUED, or RUNNING under a lease found dead → RUNNING under a new claim held by ``by``, attempts + 1.

    ``job`` is the job as read; on success it holds the new state (its ``claim`` is the lease's id).
    """
    now = timezone.now()
    return _move(
        job,
        status=Status.RUNNING,
        stage=Stage.LOADING,
        attempts=job.attempts + 1,
        started_at=job.started_at or now,
        claim=uuid.uuid4(),
        claimed_by=by,
        heartbeat_at=now,
        updated_at=now,
    )


def job_beat(job_id: int, *, claim: uuid.UUID, **fields) -> bool:
    """RUNNING under ``claim`` → the same, its heartbeat fresh and ``fields`` (stage, progress...) written; ``False``
    if the claim is gone (cancelled, or taken over)."""
    now = timezone.now()
    return _held(job_id, claim).update(heartbeat_at=now, updated_at=now, **fields) == 1


def job_held(job_id: int, *, claim: uuid.UUID) -> bool:
    """Whether the job is still RUNNING under ``claim``."""
    return _held(job_id, claim).exists()


def job_cancelled_under(job_id: int, *, claim: uuid.UUID) -> bool:
    """Whether the job was cancelled while ``claim`` held it (rather than taken over by another execution)."""
    return TrainingJob.objects.filter(pk=job_id, claim=claim, status=Status.CANCELLED).exists()


def job_release(job_id: int, *, claim: uuid.UUID) -> bool:
    """RUNNING under ``claim`` → QUEUED by the execution itself: its retry is on its way, so it counts as sent."""
    return _requeue(_held(job_id, claim), dispatched_at=timezone.now())


def job_requeue(job: TrainingJob) -> bool:
    """RUNNING under a lease found dead (``job`` as read) → QUEUED with no message, for the dispatcher to send."""
    return _requeue(TrainingJob.objects.filter(pk=job.pk, **_as_read(job)), dispatched_at=None)


def job_succeed(job_id: int, *, metrics: dict, counts: dict, run_id: str, model_id: str, version: int) -> bool:
    """QUEUED or RUNNING → SUCCEEDED with the version registered for it.

    Whichever execution holds it now: the version is in MLflow under the job's key, and an execution that took
    the job over would find and record the same one.
    """
    now = timezone.now()
    return (
        TrainingJob.objects.filter(pk=job_id, status__in=_UNFINISHED).update(
            status=Status.SUCCEEDED,
            stage=Stage.DONE,
            progress=1.0,
            metrics=metrics,
            counts=counts,
            mlflow_run_id=run_id,
            mlflow_model_id=model_id,
            registered_version=version,
            finished_at=now,
            updated_at=now,
        )
        == 1
    )


def job_fail(job: TrainingJob, *, code: str, message: str, extra: dict | None = None) -> bool:
    """QUEUED or RUNNING (``job`` as read) → FAILED with the error ``code``, ``message`` and ``extra``; told as
    ``JOB_FAILED`` (webhooks) in the same transaction."""
    now = timezone.now()
    with transaction.atomic():
        failed = _move(
            job,
            status=Status.FAILED,
            error_code=code,
            error_message=message,
            error_extra=extra or {},
            finished_at=now,
            updated_at=now,
        )
        if failed:
            events.emit(
                events.JOB_FAILED,
                {
                    "job_id": job.pk,
                    "model_name": job.model_name,
                    "user": TrainingJob.objects.filter(pk=job.pk)
                    .values_list("created_by__username", flat=True)
                    .first(),
                    "attempts": job.attempts,
                    "error": {"code": code, "message": message, "extra": extra or {}},
                },
            )
    return failed


def job_cancel(job_id: int) -> bool:
    """QUEUED, or RUNNING short of registering its version (which cannot be stopped halfway) → CANCELLED.

    The claim stays, so that its execution tells the cancel from a takeover (``job_cancelled_under``).
    """
    now = timezone.now()
    unfinished = TrainingJob.objects.filter(pk=job_id, status__in=_UNFINISHED).exclude(stage=Stage.REGISTERING)
    return unfinished.update(status=Status.CANCELLED, finished_at=now, updated_at=now) == 1


def job_dispatch_take(job_id: int, *, dispatched_at: datetime | None, at: datetime) -> bool:
    """QUEUED and last sent at ``dispatched_at`` (``None``: never) → sent at ``at``: taken for sending by this
    dispatcher, which another one running at the same time then skips."""
    return (
        TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED, dispatched_at=dispatched_at).update(
            dispatched_at=at
        )
        == 1
    )


def job_dispatch_mark(job_id: int, *, at: datetime | None) -> bool:
    """QUEUED → its message sent at ``at``, or not sent (``None``: the dispatcher sends it).

    ``updated_at`` stays: a job never sent counts the dispatcher's grace from when it was queued.
    """
    return TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).update(dispatched_at=at) == 1


def _held(job_id: int, claim: uuid.UUID):
    return TrainingJob.objects.filter(pk=job_id, claim=claim, status=Status.RUNNING)


def _as_read(job: TrainingJob) -> dict:
    """The filter that matches ``job`` only while nothing moved it since it was read: every move changes its status
    or its lease, a claim its attempts too, and a live execution's heartbeat its ``heartbeat_at``."""
    return {"status": job.status, "claim": job.claim, "heartbeat_at": job.heartbeat_at, "attempts": job.attempts}


def _move(job: TrainingJob, **changes) -> bool:
    """Apply ``changes`` to the unfinished ``job`` if it is as read, in the database and then on ``job``."""
    if job.status not in _UNFINISHED:
        return False
    moved = TrainingJob.objects.filter(pk=job.pk, **_as_read(job)).update(**changes) == 1
    if moved:
        for name, value in changes.items():
            setattr(job, name, value)
    return moved


def _requeue(running, *, dispatched_at: datetime | None) -> bool:
    now = timezone.now()
    return (
        running.filter(status=Status.RUNNING).update(
            status=Status.QUEUED,
            stage=Stage.QUEUED,
            claim=None,
            claimed_by="",
            heartbeat_at=None,
            dispatched_at=dispatched_at,
            updated_at=now,
        )
        == 1
    )
