"""Embedded mode's periodic work: a daemon thread of the web process, started by its first request.

Training's dispatcher, batch scoring's and the webhook sweeper each make a pass over their rows now and then, as
beat does on the stack. A process that only predicts or is probed starts none (``PREDICTION_PATHS``), nor do
``migrate``, a shell or the tests, which serve no request. A pass that fails (the database gone for a moment) is
logged and tried again after the interval; the first pass is retried until it succeeds.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.signals import request_started
from django.db import connection

logger = logging.getLogger(__name__)

# Requests that start no periodic work: a process that only predicts or is probed takes no job waiting in another
# process's thread. (The inference server never runs any: see mds_project/inference_server.py.)
PREDICTION_PATHS = ("/predict", "/health", "/v2", "/invocations", "/ping", "/version", "/metrics")


def periodic_on_first_request(
    *, name: str, first_pass: Callable[[], Any], every_pass: Callable[[], Any], interval: Callable[[], float]
) -> None:
    """Run ``first_pass`` on a thread called ``name`` once this process serves its first request that is not a
    prediction or a probe, then ``every_pass`` every ``interval()`` seconds."""
    lock = threading.Lock()
    started = False

    def start(environ=None, **kwargs) -> None:
        nonlocal started
        if (environ or {}).get("PATH_INFO", "").startswith(PREDICTION_PATHS):
            return
        with lock:
            if started:
                return
            started = True
        request_started.disconnect(dispatch_uid=name)
        threading.Thread(target=loop, name=name, daemon=True).start()

    def loop() -> None:
        run = first_pass
        while True:
            try:
                run()
                run = every_pass
            except Exception:
                logger.exception("A pass of %s failed", name)
            finally:
                # This thread's own connection, which no request cycle closes.
                connection.close()
            time.sleep(interval())

    # A closure: held strongly, or the signal would forget it.
    request_started.connect(start, dispatch_uid=name, weak=False)
