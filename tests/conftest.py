import socket
import uuid
from urllib.parse import urlencode

import pytest
from botocore.config import Config
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from inference.model_cache import model_cache
from inference.prediction_log import prediction_log_writer
from mds_project.celery import app as celery_app

from .factories import UserFactory, api_token, weather_csv


@pytest.fixture
def user(db):
    """A trainer: predicts, trains and sees their own jobs."""
    return UserFactory(role="trainer")


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client


@pytest.fixture
def api_client(user):
    return token_client(user)


@pytest.fixture
def role_client(db):
    """``role_client("maintainer")``: an API client with the token of a new user in that role."""
    return lambda role: token_client(UserFactory(role=role))


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle counters live in the cache, keyed by user id, and ids repeat across tests on SQLite.
    cache.clear()
    yield


@pytest.fixture
def model_name():
    """A registered-model name of its own per test: the MLflow store is shared by the whole session."""
    return f"test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def csv_upload():
    def make(content: bytes | None = None, name: str = "weather.csv") -> SimpleUploadedFile:
        return SimpleUploadedFile(name, weather_csv() if content is None else content, content_type="text/csv")

    return make


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    model_cache().clear()
    yield
    model_cache().clear()


@pytest.fixture(autouse=True)
def _empty_prediction_log_queue():
    # Answers of earlier tests would otherwise be written into this test's database by its first flush.
    prediction_log_writer().clear()


@pytest.fixture
def train(api_client, csv_upload, django_capture_on_commit_callbacks, model_name):
    """POST /train with a small, fast forest; returns the finished job's JSON."""

    def run(content: bytes | None = None, client: APIClient | None = None, **params):
        client = client or api_client
        query = {"model_name": model_name, "n_estimators": 10, **params}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/train?{urlencode(query)}", {"file": csv_upload(content)})
        # 202 when the commit is the test's (the job runs as the block exits); in a transactional test the job
        # runs inside the request, and the answer is 200 with it finished.
        assert response.status_code in (200, 202), response.json()
        return client.get(f"/train/{response.json()['id']}").json()

    return run


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused for real."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def storages_on_a_closed_port(storages: dict, port: int) -> dict:
    """``storages`` with datasets on an S3 server at ``port`` of this machine, where nothing listens."""
    return {
        **storages,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "datasets",
                "endpoint_url": f"http://127.0.0.1:{port}",
                "access_key": "k",
                "secret_key": "s",
                "client_config": Config(retries={"max_attempts": 1}, connect_timeout=1),
            },
        },
    }


@pytest.fixture
def s3_down(settings, closed_port):
    """Datasets on an S3 server that is not running."""
    settings.STORAGES = storages_on_a_closed_port(settings.STORAGES, closed_port)


@pytest.fixture
def broker_down(closed_port):
    """The Celery app publishing to a Redis port nothing listens on: every send is refused for real."""
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.broker_url
    conf.task_always_eager, conf.broker_url = False, f"redis://127.0.0.1:{closed_port}/0"
    _connection_pools_reset()
    yield
    conf.task_always_eager, conf.broker_url = saved
    _connection_pools_reset()


def _connection_pools_reset() -> None:
    # The app keeps its connection and producer pools for the broker URL it first saw.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
