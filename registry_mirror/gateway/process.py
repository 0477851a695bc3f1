"""Serving calls in a child process, so a serving process never imports MLflow."""

import contextlib
import json
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from ..errors import ApplicationError, NotFound, RegistryUnavailable
from .core import _quiet_mlflow, client


class RegistryProcess:
    """Runs the serving calls (``gateway.serving``) in a child process, so a serving process never imports MLflow.

    Importing MLflow costs ~180 MB of RSS and ~1.5 s in every process that does it; an inference worker needs
    MLflow only to resolve and download a version now and then. The child starts on first use (or ahead of
    time with ``start()``), answers one JSON line per call, and exits after ``idle_timeout`` idle seconds or
    when its parent goes away. Thread-safe: calls are serialized.
    """

    FUNCTIONS = ("model_version_number", "model_version_fetch")

    def __init__(self, *, idle_timeout: float, call_timeout: float = 600.0):
        self.idle_timeout = idle_timeout
        self.call_timeout = call_timeout
        self._process = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._ensure_started()

    def call(self, function: str, **kwargs: Any) -> Any:
        """Run the gateway package's ``function(**kwargs)`` in the child against the configured tracking URI."""
        request = {"function": function, "kwargs": kwargs, "tracking_uri": settings.MLFLOW_TRACKING_URI}
        with self._lock:
            process = self._ensure_started()
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                ready, _, _ = select.select([process.stdout], [], [], self.call_timeout)
                line = process.stdout.readline() if ready else ""
            except (OSError, ValueError):
                line = ""
            if not line:
                self._stop(process)
                raise RegistryUnavailable("The registry client process did not answer.")
        answer = json.loads(line)
        if "error" in answer:
            error = answer["error"]
            cls = {"NotFound": NotFound, "RegistryUnavailable": RegistryUnavailable}.get(error["class"])
            raise (cls or ApplicationError)(error["message"], code=error["code"], extra=error["extra"])
        return answer["result"]

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._stop(self._process)

    def _ensure_started(self):
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "registry_mirror.gateway", str(self.idle_timeout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
            )
        return self._process

    def _stop(self, process) -> None:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(Exception):
            process.wait(timeout=5)
        self._process = None


def serve_calls(idle_timeout: float) -> None:
    """The child side of ``RegistryProcess``: one JSON request per stdin line, one JSON answer per stdout line."""
    from registry_mirror import gateway  # the importable module, not ``__main__``

    _quiet_mlflow()
    with contextlib.suppress(Exception):
        # Import MLflow and open the store now, so the first real call does not wait for it.
        client().search_registered_models(max_results=1)
    while select.select([sys.stdin], [], [], idle_timeout)[0]:
        line = sys.stdin.readline()
        if not line:
            return
        request = json.loads(line)
        try:
            if request["function"] not in RegistryProcess.FUNCTIONS:
                raise ApplicationError(f"Unknown function {request['function']!r}.")
            settings.MLFLOW_TRACKING_URI = request["tracking_uri"]
            answer = {"result": getattr(gateway, request["function"])(**request["kwargs"])}
        except ApplicationError as exc:
            error = {"class": type(exc).__name__, "message": exc.message, "code": exc.code, "extra": exc.extra}
            answer = {"error": error}
        except Exception as exc:  # noqa: BLE001 - any failure is the registry's, reported to the caller
            error = {"class": "RegistryUnavailable", "message": f"MLflow failed: {exc}", "code": "unavailable"}
            answer = {"error": {**error, "extra": {}}}
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()
