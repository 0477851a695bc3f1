"""The one translation of MLflow's failures: outage 503 with Retry-After, missing 404, anything else named."""

import socket

import pytest
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from core.errors import ApplicationError, MlflowUnavailable, NotFound, http_status
from registry_mirror.gateway import rest, translated_errors


@pytest.fixture
def closed_port(settings) -> str:
    """MDS pointed at a loopback port nothing listens on: connections are refused for real."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{port}"
    settings.MLFLOW_HTTP_REQUEST_MAX_RETRIES = 0
    return settings.MLFLOW_TRACKING_URI


def test_an_outage_over_rest_is_a_503_with_retry_after(closed_port):
    # when
    with pytest.raises(MlflowUnavailable) as down:
        rest.get("2.0/mlflow/model-versions/get", name="weather", version="1")

    # then
    assert http_status(down.value) == 503
    assert down.value.retry_after == 10
    assert down.value.message.startswith("MLflow is unreachable: ")


def test_an_outage_through_the_sdk_is_the_same_503(closed_port, monkeypatch):
    # given: the SDK's own retries off, so its failure comes at once
    from registry_mirror import gateway

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")

    # when: the SDK words the refused connection as an MlflowException of its own
    with pytest.raises(MlflowUnavailable) as down, translated_errors():
        gateway.client().get_registered_model("weather")

    # then
    assert isinstance(down.value.__cause__, MlflowException)
    assert http_status(down.value) == 503
    assert down.value.message.startswith("MLflow is unreachable: ")


@pytest.mark.parametrize(
    ("raised", "expected", "status"),
    [
        (RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "gone"}), NotFound, 404),
        (MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST), NotFound, 404),
        (RestException({"error_code": "INTERNAL_ERROR", "message": "boom"}), MlflowUnavailable, 503),
        (MlflowException("db down", error_code=TEMPORARILY_UNAVAILABLE), MlflowUnavailable, 503),
        (MlflowException("bad name", error_code=INVALID_PARAMETER_VALUE), ApplicationError, 400),
        (RestException({"error_code": "PERMISSION_DENIED", "message": "no"}), ApplicationError, 400),
    ],
)
def test_mlflow_refusals_are_translated_by_kind(raised, expected, status):
    # when
    with pytest.raises(ApplicationError) as translated, translated_errors():
        raise raised

    # then
    assert type(translated.value) is expected
    assert http_status(translated.value) == status
    if status != 503:
        assert translated.value.extra["mlflow_error"] == raised.error_code


def test_a_failure_the_sdk_raises_on_its_own_is_left_to_the_caller():
    # given: neither an outage nor a code we translate (such as a missing local artifact)
    raised = MlflowException("no such file", error_code=INTERNAL_ERROR)

    # when / then
    with pytest.raises(MlflowException), translated_errors():
        raise raised
