import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings


@pytest.fixture
def mlflow_store(settings, tmp_path):
    """An empty MLflow store (sqlite + local artifacts) of this test's own, so full syncs see only its data."""
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = (tmp_path / "artifacts").as_uri()
    return settings.MLFLOW_TRACKING_URI


@pytest.fixture
def mlflow_down(settings, monkeypatch):
    """Point MDS at an MLflow server that is not there: a local port nothing listens on, and no retries."""

    def stop() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")

    return stop


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server():
    """A real MLflow server over the session's SQLite store and artifact directory."""
    port = free_port()
    store = django_settings.MLFLOW_TRACKING_URI
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", store]
    cmd += ["--default-artifact-root", django_settings.MLFLOW_ARTIFACT_ROOT, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "--allowed-hosts", f"127.0.0.1:{port}"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail("the MLflow server did not start")
    yield url
    server.terminate()
    server.wait(timeout=30)
