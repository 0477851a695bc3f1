"""The in-process benches' common ground: a temporary embedded store with one trained version, and /predict
called through the inference server's WSGI application without HTTP or a load generator."""

import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TrainedVersion:
    model_name: str
    version: int
    frame: pd.DataFrame  # the training data: timestamp, features, target


@contextlib.contextmanager
def embedded_store(prefix: str, directory: Path | None = None) -> Iterator[None]:
    """Django on local settings over a temporary data directory, migrated; removed afterwards. ``directory``
    instead is kept, for another run to use again."""
    data_dir = directory or Path(tempfile.mkdtemp(prefix=prefix))
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        MDS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="mds_project.settings.local", DJANGO_DEBUG="false"
    )
    sys.path.insert(0, str(ROOT))
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield
    finally:
        if directory is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def version_train(*, model_name: str, days: int, max_depth: int | None = None) -> TrainedVersion:
    """A 100-tree forest on ``days`` rows of the sample weather data, trained in this process."""
    from sample_data.make_weather import make_weather
    from training import ml, services

    frame = make_weather(days=days, seed=11)
    job = services.training_job_start(
        file=io.BytesIO(frame.to_csv(index=False).encode()),
        file_name="weather.csv",
        user=bench_user(),
        model_name=model_name,
        target="target",
        timestamp="timestamp",
        params=ml.TrainingParams(n_estimators=100, max_depth=max_depth),
    )
    job = services.training_job_wait(job_id=job.pk, timeout=900)
    assert job.registered_version, job.error_message
    return TrainedVersion(model_name=model_name, version=job.registered_version, frame=frame)


def bench_user():
    """The user the benches train and predict as: a superuser, who holds every role's permissions."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})[0]


def predict_caller(
    trained: TrainedVersion, body: bytes, *, content_type: str = "text/csv", status: str = "200"
) -> Callable[[], dict[str, str]]:
    """A call of /predict with ``body`` (CSV unless ``content_type`` says otherwise) as a superuser, expected to
    answer ``status``; it returns the answer's headers."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from core.tokens import token_create
    from mds_project import inference_wsgi

    _, token = token_create(user=bench_user())
    # As a server does, but without closing the connection around every call (not what is measured here).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def call() -> dict[str, str]:
        environ = {
            "PATH_INFO": "/predict",
            "QUERY_STRING": f"model_name={trained.model_name}&version={trained.version}",
            "REQUEST_METHOD": "POST",
            "HTTP_HOST": "127.0.0.1",
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Token {token}",
            "wsgi.input": io.BytesIO(body),
        }
        setup_testing_defaults(environ)
        seen = {}
        b"".join(inference_wsgi.application(environ, lambda s, h, e=None: seen.update(s=s, h=dict(h))))
        assert seen["s"].startswith(status), seen
        return seen["h"]

    return call


def prediction_log_flush() -> None:
    """What the prediction log still holds is written now, as at a server's exit (before the store goes)."""
    from inference.prediction_log import prediction_log_writer

    prediction_log_writer().stop()
