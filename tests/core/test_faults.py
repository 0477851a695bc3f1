"""A dependency that is down is a 503 with Retry-After and a clear code, never a 500."""

import knox.models
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, IncompleteReadError
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from core import faults
from core.errors import MlflowUnavailable
from tests.factories import StaffUserFactory


def s3_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize(
    "exc, code",
    [
        (OperationalError("server closed the connection unexpectedly"), "database_unavailable"),
        (InterfaceError("connection already closed"), "database_unavailable"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "storage_unavailable"),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:9"), "storage_unavailable"),
        (s3_error(503, "ServiceUnavailable"), "storage_unavailable"),
        (IncompleteReadError(actual_bytes=7993166, expected_bytes=8388664), "storage_unavailable"),
        (KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), "broker_unavailable"),
        (RedisConnectionError("Connection refused"), "broker_unavailable"),
        (MlflowUnavailable("MLflow is unreachable"), "mlflow_unavailable"),
        (s3_error(404, "NoSuchKey"), None),
        (ValueError("a bug"), None),
    ],
)
def test_transient_dependency_faults_are_recognised_and_others_are_not(exc, code):
    # when
    error = faults.unavailable(exc)

    # then
    assert (error.code if error else None) == code
    assert error is None or error.retry_after > 0


class UnreachableTokens:
    """A token model whose table lives in a database that refuses connections (a fault injected at knox's seam)."""

    class DoesNotExist(Exception):
        pass

    class objects:
        @staticmethod
        def select_related(*args):
            raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')


@pytest.mark.parametrize("path", ["/train", "/models/", "/predict"])
def test_a_database_down_while_checking_a_token_is_a_503(client, monkeypatch, path):
    # given
    monkeypatch.setattr(knox.models, "get_token_model", lambda: UnreachableTokens)

    # when
    response = client.post(path, HTTP_AUTHORIZATION="Token not-cached-anywhere")

    # then
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable" and response.json()["message"]
    assert int(response["Retry-After"]) > 0


def test_a_database_down_under_the_admin_is_a_503_too(db, client, monkeypatch):
    # given: a signed-in admin, then the session table becomes unreachable
    from django.contrib.sessions.backends.db import SessionStore

    client.force_login(StaffUserFactory())
    client.raise_request_exception = False

    def unreachable(self):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SessionStore, "load", unreachable)

    # when
    response = client.get("/admin/")

    # then
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0


def test_training_is_accepted_while_the_throttle_counters_are_unreachable(
    api_client, csv_upload, settings, closed_port, model_name
):
    # given: a tight training throttle counted in a Redis that is down (the broker's server, in production)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    settings.MDS_THROTTLE_TRAIN = "1/hour"

    # when
    answers = [
        api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()}).status_code
        for _ in range(2)
    ]

    # then: counted nowhere, refused never
    assert answers == [202, 202]
