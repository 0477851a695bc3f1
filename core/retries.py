"""The Celery task base of MDS's jobs (training, batch scoring): a transient fault is retried, the same way for all."""

from celery import Task
from django.conf import settings

from .errors import Unavailable


class TransientFaultTask(Task):
    """A transient fault (``Unavailable``: MLflow, S3 or the database unreachable) is retried ``MDS_TRAIN_RETRIES``
    times, ``MDS_RETRY_BACKOFF`` seconds apart doubling up to ``MDS_RETRY_BACKOFF_MAX``."""

    autoretry_for = (Unavailable,)
    # The same delays for every job (5, 10, 20, 40, 60, 60... s): a job starts again at most a minute after its
    # dependency is back (Celery's full jitter would draw each delay anywhere below them).
    retry_jitter = False

    # Settings are read when Celery builds the task (the backoff) and when a retry is due (the count), never as this
    # module loads. Celery counts the backoff in whole seconds.
    @property
    def retry_backoff(self) -> float:
        return settings.MDS_RETRY_BACKOFF

    @property
    def retry_backoff_max(self) -> float:
        return settings.MDS_RETRY_BACKOFF_MAX

    # Celery's attribute, read from the settings whenever Celery asks.
    @property
    def max_retries(self) -> int:  # type: ignore[override]
        return settings.MDS_TRAIN_RETRIES
