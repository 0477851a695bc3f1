"""The inference server: granian (HTTP in Rust) running ``mds_project.inference_wsgi`` in threads.

    python -m mds_project.inference_server [--bind 127.0.0.1:8002] [--grpc-bind 127.0.0.1:8003]

Why not gunicorn, as for the web app: a 1-row prediction takes ~0.6 ms of Python in the app, and gunicorn's gthread
worker added about as much again (its HTTP parsing and thread hand-offs run under the same GIL). On 2 vCPUs,
1-row requests on 8 connections (bench/predict.py's load): ~1000-1200 requests/s against ~500-600 with gunicorn on
the same app and version, for ~45 MB more memory.

Environment: ``INFERENCE_WORKERS`` (processes, default 1: each holds its own copy of the loaded models),
``INFERENCE_THREADS`` (threads running the app per process, default 8; the engines release the GIL on large
batches), ``INFERENCE_GRPC_BIND`` (``--grpc-bind``: where each worker also serves the Open Inference Protocol over
gRPC, ``inference/v2/grpc_server.py``; off unless given, so no port opens unasked), ``INFERENCE_ACCESSLOG``
(``false`` turns the access log off), ``PROMETHEUS_MULTIPROC_DIR`` and ``MALLOC_ARENA_MAX``
(mds_project/server_process.py).
"""

import argparse
import os

from granian import Granian
from granian.constants import Interfaces

from mds_project.server_process import configure_metrics, limit_malloc_arenas, remove_metrics_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_bind = os.environ.get("INFERENCE_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
    parser.add_argument("--bind", default=default_bind, help="host:port (default %(default)s)")
    parser.add_argument(
        "--grpc-bind",
        default=os.environ.get("INFERENCE_GRPC_BIND", ""),
        help="host:port of the Open Inference Protocol's gRPC service (default: off)",
    )
    args = parser.parse_args()
    if args.grpc_bind:
        # Read by each worker process as it imports mds_project.inference_wsgi.
        os.environ["INFERENCE_GRPC_BIND"] = args.grpc_bind
    host, _, port = args.bind.rpartition(":")
    # Before granian forks its worker processes, which inherit them.
    # Beside `make run` (embedded settings) this server predicts only: the web process's training thread trains.
    os.environ.setdefault("MDS_EMBEDDED_BACKGROUND_TRAINING", "false")
    configure_metrics()
    limit_malloc_arenas()
    try:
        Granian(
            "mds_project.inference_wsgi:application",
            interface=Interfaces.WSGI,
            address=host,
            port=int(port),
            workers=int(os.environ.get("INFERENCE_WORKERS", "1")),
            blocking_threads=int(os.environ.get("INFERENCE_THREADS", "8")),
            respawn_failed_workers=True,
            log_access=os.environ.get("INFERENCE_ACCESSLOG", "true").lower() not in ("", "0", "false"),
        ).serve()
    finally:
        remove_metrics_dir()


if __name__ == "__main__":
    main()
