import socket

import pytest


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
