"""Gunicorn settings; each can be overridden by the environment or the command line.

Serving predictions on 2 vCPUs: one worker process with threads. Requests are short and mostly GIL-bound
Python, while onnxruntime and sklearn release the GIL, so threads keep both cores busy on big batches; a second
process would double memory (~500 MB per loaded forest) for little gain on small requests. Raise
``WEB_CONCURRENCY`` on machines with more cores and memory.
"""

import os
import shutil
import tempfile
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Keep-alive connections from clients and load balancers are reused instead of re-handshaking per request.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "15"))
# Embedded mode trains inside the request when `?wait=` is given: allow a long one.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))
graceful_timeout = 30
# Access logging costs ~5% of a small request; `GUNICORN_ACCESSLOG=` (empty) turns it off.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
# No control socket in the home directory.
control_socket_disable = True


# /metrics sums the Prometheus values every worker process writes into one directory (core/metrics.py). Each
# server (each gunicorn master) needs its own: a fresh temporary one unless PROMETHEUS_MULTIPROC_DIR names one.
# Set here, in the master, so every worker inherits it before it first imports prometheus_client.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mds-prometheus-")


def on_starting(server):
    # A directory named by the environment may hold a previous run's files, which would be summed into this one's.
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    # A dead worker's counters still count; its live gauges (queued log entries, loaded versions) must not.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_fork(server, worker):
    from mds_project.memory import limit_malloc_arenas

    limit_malloc_arenas(int(os.environ.get("MALLOC_ARENA_MAX", "2")))
