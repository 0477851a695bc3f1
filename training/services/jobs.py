"""Reading training jobs as clients see them: waiting for one to finish, the versions it registered."""

import time
from typing import Any

from django.db import InterfaceError, OperationalError

from ..models import TrainingJob
from .leases import connection_reset


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
