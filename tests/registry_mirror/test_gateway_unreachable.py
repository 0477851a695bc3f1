"""An MLflow server that does not answer surfaces as MlflowUnavailable within seconds (bounded HTTP retries)."""

import socket
import time

import pytest

from core.errors import MlflowUnavailable
from registry_mirror import gateway


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused for real."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_down_mlflow_server_raises_registry_unavailable_quickly(settings, closed_port):
    # given
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{closed_port}"
    started = time.monotonic()

    # when
    with pytest.raises(MlflowUnavailable) as raised:
        gateway.experiment_id()

    # then: MLflow's default budget (7 retries, exponential backoff) would take minutes
    assert time.monotonic() - started < 20
    assert "unreachable" in raised.value.message
