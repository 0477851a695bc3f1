"""Training jobs as clients see them: waiting for one to finish, cancelling it, the versions it registered."""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError

from core.errors import Conflict

from ..models import TrainingJob
from . import transitions
from .leases import connection_reset

logger = logging.getLogger(__name__)

# Requests of this process waiting in `training_job_wait` now (`?wait=`), each holding a web server thread.
_waiting = 0
_waiting_lock = threading.Lock()


@contextmanager
def training_wait_slot() -> Iterator[bool]:
    """One of this process's ``MDS_TRAIN_MAX_WAITERS`` places to wait for a job in: ``True`` inside the block if
    one was free (and held until the block ends), ``False`` if all were taken.

    A waiting request holds one of the web server's few threads for up to ``MDS_TRAIN_MAX_WAIT`` seconds: eight
    waiting requests held every thread, and ``/health`` stopped answering. Requests past the limit get their
    answer at once; the job is the same, only the wait is skipped.
    """
    global _waiting
    with _waiting_lock:
        held = _waiting < settings.MDS_TRAIN_MAX_WAITERS
        if held:
            _waiting += 1
    try:
        yield held
    finally:
        if held:
            with _waiting_lock:
                _waiting -= 1


def training_job_wait(*, job_id: int, timeout: float, poll_interval: float = 0.25, job: TrainingJob | None = None):
    """The job once it has finished, or as it stands after ``timeout`` seconds (one read with ``timeout=0``).

    ``job`` is the job as last known: while the database is briefly unavailable the wait goes on, and ends with
    that if nothing newer could be read (an accepted job is still an accepted job).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = TrainingJob.objects.select_related("dataset").get(pk=job_id)
        except (OperationalError, InterfaceError):
            if job is None:
                raise
            connection_reset()
        if job.is_finished or time.monotonic() >= deadline:
            return job
        time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))


def trained_models(job: TrainingJob) -> list[dict[str, Any]]:
    """The versions a job registered, in the shape clients of the original service read."""
    if job.status != TrainingJob.Status.SUCCEEDED:
        return []
    return [
        {
            "name": job.model_name,
            "version": job.registered_version,
            "run_id": job.mlflow_run_id,
            "model_uri": f"models:/{job.model_name}/{job.registered_version}",
            "formats": ["onnx", "sklearn"],
        }
    ]


def training_job_cancel(*, job_id: int, user=None) -> TrainingJob:
    """Cancel a queued or running job that ``user`` may see (``TrainingJob.DoesNotExist`` otherwise).

    A queued job is never run: its claim finds it finished. A running job's execution sees the status at its next
    checkpoint (a progress write between chunks of trees, a stage change, its heartbeat), ends its MLflow run as
    KILLED and registers nothing.

    Raises:
        Conflict: ``job_finished`` if the job already ended; ``job_registering`` if its version is being
            registered (it cannot be stopped halfway through MLflow).
    """
    from ..selectors import training_job_get

    job = training_job_get(job_id=job_id, user=user)
    # Read again if the job moved between the read and the cancel (it finished, or reached registering).
    while not transitions.job_cancel(job.pk):
        job = TrainingJob.objects.get(pk=job.pk)
        if job.is_finished:
            raise Conflict(
                f"Training job {job.pk} has already ended ({job.status}).",
                code="job_finished",
                extra={"status": job.status},
            )
        if job.stage == TrainingJob.Stage.REGISTERING:
            raise Conflict(
                f"Training job {job.pk} is registering its version in MLflow; it can no longer be cancelled.",
                code="job_registering",
                extra={"status": job.status, "stage": job.stage},
            )
    logger.info("Cancelled training job %s (%s, stage %s)", job.pk, job.status, job.stage)
    return TrainingJob.objects.select_related("dataset").get(pk=job.pk)
