"""Gunicorn settings; each can be overridden by the environment or the command line."""

import os

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Embedded mode trains inside the request when `?wait=` is given: allow a long one.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))
graceful_timeout = 30
accesslog = "-"
# No control socket in the home directory.
control_socket_disable = True
