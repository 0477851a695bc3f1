"""Embedded mode's worker: training jobs run on a thread of the web process, off the request thread.

Embedded mode has no broker (tasks run in-process). With ``MDS_EMBEDDED_BACKGROUND_TRAINING`` the dispatch of a
committed job hands it to this process's training thread instead of running it inside the request that committed
it: ``POST /train`` answers 202 at once, and clients follow the job's progress as on the stack (``?wait=`` still
waits for it). The job runs as on a worker: claimed, under a lease whose heartbeat this thread's ``Lease`` keeps
fresh, retried with the same backoff when MLflow or the database is briefly unreachable (``TrainingTask``).

A job whose process died (the server stopped or was killed mid-training, a job still waiting for the thread) is
taken up again as on the stack: from its first request on (other than a prediction or a health check), each web
process runs the dispatcher, at once and then every ``MDS_DISPATCH_INTERVAL`` seconds as beat does, which
re-queues jobs whose execution is gone and hands the queued ones to its training thread. A job handed to two
processes runs once: its claim lets one execution run it.
"""

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from core.background import periodic_on_first_request
from core.errors import Unavailable

logger = logging.getLogger(__name__)

_training_thread: "TrainingThread | None" = None
_lock = threading.Lock()


class TrainingThread:
    """One thread that runs what it is given, in order: one job at a time, as a worker process with prefetch 1
    (training uses every core; two fits at once would only share them, and double the memory).

    A daemon: stopping the server (Ctrl-C) does not wait for a training to end; the job's lease lets the next start
    take it up again.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._work, name="training", daemon=True).start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            future, fn, args = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)


def background_training() -> bool:
    """Whether this process trains in-process on its training thread (embedded mode, background on)."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER and settings.MDS_EMBEDDED_BACKGROUND_TRAINING)


def executor() -> TrainingThread:
    """This process's training thread, started on first use."""
    global _training_thread
    with _lock:
        if _training_thread is None:
            _training_thread = TrainingThread()
        return _training_thread


def training_job_submit(*, job_id: int, retries: int = 0) -> None:
    """Hand the job to this process's training thread; it runs once the jobs before it are done."""
    executor().submit(_training_job_run, job_id, retries)


def _training_job_run(job_id: int, retries: int) -> None:
    from .execution import training_job_execute, training_job_fail

    try:
        training_job_execute(job_id=job_id, heartbeat=True)
    except Unavailable as exc:
        # The execution released the job to the queue: try again later, as the Celery task's retry would.
        if retries < settings.MDS_TRAIN_RETRIES:
            delay = min(settings.MDS_RETRY_BACKOFF * 2**retries, settings.MDS_RETRY_BACKOFF_MAX)
            logger.warning("Training job %s runs again in %.0f s: %s", job_id, delay, exc)
            timer = threading.Timer(delay, training_job_submit, kwargs={"job_id": job_id, "retries": retries + 1})
            timer.daemon = True
            timer.start()
            return
        _training_job_fail_quietly(training_job_fail, job_id, exc)
    except Exception as exc:
        # Data problems were recorded by the execution itself; this is the worker's last word on anything else.
        logger.exception("Training job %s failed", job_id)
        _training_job_fail_quietly(training_job_fail, job_id, exc)
    finally:
        # This thread's own connection, which no request cycle closes.
        connection.close()


def _training_job_fail_quietly(training_job_fail, job_id: int, exc: Exception) -> None:
    try:
        training_job_fail(job_id=job_id, code=getattr(exc, "code", "internal_error"), message=str(exc))
    except DatabaseError as error:
        # Not recorded is not stuck: the job's heartbeat goes stale and the dispatcher takes it up again.
        logger.warning("Could not record the failure of training job %s: %s", job_id, error)


def embedded_jobs_resume() -> dict[str, list[int]]:
    """The dispatcher's pass as this process starts: jobs of a dead execution re-queued, and every queued job handed
    to the training thread (a job waiting in a stopped process's memory has no other way to run)."""
    from .dispatch import training_jobs_dispatch

    return training_jobs_dispatch(resend_queued=True)


def embedded_dispatcher_connect() -> None:
    """Start the dispatcher with this process's first request, in embedded mode with background training."""
    if background_training():
        from .dispatch import training_jobs_dispatch

        periodic_on_first_request(
            name="training-dispatcher",
            first_pass=embedded_jobs_resume,
            every_pass=training_jobs_dispatch,
            interval=lambda: settings.MDS_DISPATCH_INTERVAL,
        )
