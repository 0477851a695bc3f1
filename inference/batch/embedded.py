"""Embedded mode's batch worker: one thread of the web process scores batch jobs, chunk by chunk.

Embedded mode has no broker. With ``MDS_EMBEDDED_BACKGROUND_TRAINING`` (on in ``make run``) the plan, chunk and
join messages go to this thread, in order, so ``POST /batch`` answers 202 at once and the same API follows the
job; with it off (the tests) they run inline when their transaction commits.

Messages handed to the thread live in the process's memory: a server stopped or killed mid-job takes them along.
So, as for training jobs, from its first request on (other than a prediction or a health check) each web process
runs a dispatcher: its first pass re-queues the chunks whose execution is gone and hands every queued plan, chunk
and due join to this thread (``batch_jobs_resume``); then, every ``MDS_DISPATCH_INTERVAL`` seconds, it sweeps as
beat does on the stack. A message handed out twice does its work once: chunks are claimed, plans and joins check
the job's status.
"""

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection

from core.background import periodic_on_first_request

logger = logging.getLogger(__name__)

_queue: queue.SimpleQueue | None = None
_lock = threading.Lock()


def background() -> bool:
    return bool(settings.CELERY_TASK_ALWAYS_EAGER and settings.MDS_EMBEDDED_BACKGROUND_TRAINING)


def submit(fn: Callable[..., Any], *args: Any) -> None:
    global _queue
    with _lock:
        if _queue is None:
            _queue = queue.SimpleQueue()
            threading.Thread(target=_work, args=(_queue,), name="batch", daemon=True).start()
    _queue.put((fn, args))


def _work(work: queue.SimpleQueue) -> None:
    while True:
        fn, args = work.get()
        try:
            fn(*args)
        except Exception:
            # The rows say what is left to do; the dispatcher's next sweep takes it up again.
            logger.exception("Batch work %s%s failed", getattr(fn, "__name__", fn), args)
        finally:
            connection.close()


def batch_jobs_resume() -> dict[str, list[int]]:
    """The dispatcher's first pass as this process starts: chunks of a dead execution re-queued, and every queued
    plan and chunk and every due join handed to the batch thread (those an earlier process held are lost)."""
    from .services import batch_jobs_sweep

    return batch_jobs_sweep(resend_all=True)


def dispatcher_connect() -> None:
    """Start the dispatcher with this process's first request, in embedded mode with background work."""
    if background():
        from .services import batch_jobs_sweep

        periodic_on_first_request(
            name="batch-dispatcher",
            first_pass=batch_jobs_resume,
            every_pass=batch_jobs_sweep,
            interval=lambda: settings.MDS_DISPATCH_INTERVAL,
        )
