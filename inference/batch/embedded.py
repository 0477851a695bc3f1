"""Embedded mode's batch worker: one thread of the web process scores batch jobs, chunk by chunk.

Embedded mode has no broker. With ``MDS_EMBEDDED_BACKGROUND_TRAINING`` (on in ``make run``) the plan, chunk and
join messages go to this thread, in order, so ``POST /batch`` answers 202 at once and the same API follows the
job; with it off (the tests) they run inline when their transaction commits.
"""

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection

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
            # The rows say what is left to do; the sweeper (beat, or the next submit) takes it up again.
            logger.exception("Batch work %s%s failed", getattr(fn, "__name__", fn), args)
        finally:
            connection.close()
