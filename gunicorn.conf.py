"""Gunicorn settings; each can be overridden by the environment or the command line.

Serving predictions on 2 vCPUs: one worker process with threads. Requests are short and mostly GIL-bound
Python, while onnxruntime and sklearn release the GIL, so threads keep both cores busy on big batches; a second
process would double memory (~500 MB per loaded forest) for little gain on small requests. Raise
``WEB_CONCURRENCY`` on machines with more cores and memory.
"""

import os

from mds_project.server_process import configure_metrics, limit_malloc_arenas, remove_metrics_dir

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Keep-alive connections from clients and load balancers are reused instead of re-handshaking per request.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "15"))
# A long request must not kill the worker: `?wait=N` blocks up to N s (at most MDS_TRAIN_MAX_WAIT, 600), and with
# MDS_EMBEDDED_BACKGROUND_TRAINING=false embedded mode trains inside the request.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))
graceful_timeout = 30
# Access logging costs ~5% of a small request; `GUNICORN_ACCESSLOG=` (empty) turns it off.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
# No control socket in the home directory.
control_socket_disable = True


# Before the workers start, so that each inherits them: the metrics directory they share (one per server) and the
# malloc arena limit.
configure_metrics()
limit_malloc_arenas()


def child_exit(server, worker):
    # A dead worker's counters still count; its live gauges (queued log entries, loaded versions) must not.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    remove_metrics_dir()
