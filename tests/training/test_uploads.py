"""Streaming uploads on /train: the size limit while the body streams in, the web's check of the first rows, the
worker's check of the rest, and the web process's memory on a large upload."""

import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.test import RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, ClientHandler, encode_multipart

from tests.factories import StaffUserFactory, api_token, csv_bytes, weather_frame
from training.models import Dataset, TrainingJob


@pytest.fixture
def upload_dirs(settings, tmp_path):
    """The storage and the upload spool in directories of the test's own, to see what is left in them."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "spool"
    settings.FILE_UPLOAD_TEMP_DIR.mkdir()
    return settings.MEDIA_ROOT, settings.FILE_UPLOAD_TEMP_DIR


def files_in(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()] if directory.exists() else []


def big_csv(rows: int) -> bytes:
    """A valid training CSV of ``rows`` rows, ~100 bytes each, made fast."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(rows, 8)).round(6), columns=[f"f{i}" for i in range(8)])
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=rows, freq="min").strftime("%Y-%m-%dT%H:%M"))
    frame["target"] = (frame["f0"] * 10 + 100).round(3)
    return csv_bytes(frame)


def with_bad_cell(frame: pd.DataFrame, *, row: int, column: str, value: str) -> bytes:
    """``frame`` as CSV with data row ``row`` (1-based) of ``column`` replaced by ``value``."""
    frame = frame.astype({column: object})
    frame.loc[row - 1, column] = value
    return csv_bytes(frame)


def test_an_upload_over_the_limit_is_a_413_mid_stream_and_leaves_nothing(
    api_client, csv_upload, model_name, settings, upload_dirs
):
    # given: 3 MB against a 1 MB limit, a body small enough to be read rather than refused by its length
    settings.MDS_TRAIN_MAX_UPLOAD_BYTES = 1024 * 1024
    content = big_csv(40_000)
    assert len(content) > 3 * settings.MDS_TRAIN_MAX_UPLOAD_BYTES

    # when
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload(content)})

    # then: refused with the limit named, and the body was not read to its end
    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "too_large" and body["extra"]["max_bytes"] == settings.MDS_TRAIN_MAX_UPLOAD_BYTES
    stream = response.wsgi_request._stream  # Django's LimitedStream over the body: how far it was read
    assert stream._pos < 2 * settings.MDS_TRAIN_MAX_UPLOAD_BYTES < stream.limit
    # ...and nothing is kept: no row, no stored file, no spooled part of the upload
    assert not Dataset.objects.exists() and not TrainingJob.objects.exists()
    media, spool = upload_dirs
    assert files_in(media) == [] and files_in(spool) == []


def test_a_body_declared_over_the_limit_is_a_413_before_any_of_it_is_read(
    api_client, csv_upload, model_name, settings, upload_dirs
):
    # given
    settings.MDS_TRAIN_MAX_UPLOAD_BYTES = 100_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    # when
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload(big_csv(5_000))})

    # then
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert response.wsgi_request._stream._pos == 0
    assert not Dataset.objects.exists()


def test_a_bad_cell_in_the_checked_rows_is_a_400_naming_column_and_row(
    api_client, csv_upload, model_name, settings, upload_dirs
):
    # given: 500 rows, 100 of them checked in the web, a bad cell at row 40
    settings.MDS_TRAIN_CHECK_ROWS = 100
    content = with_bad_cell(weather_frame(500), row=40, column="humidity_pct", value="wet")

    # when
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload(content)})

    # then
    assert response.status_code == 400
    assert response.json() == {
        "message": "Column 'humidity_pct', row 40: 'wet' is not a number.",
        "code": "bad_cell",
        "extra": {"column": "humidity_pct", "row": 40, "bad_rows": 1},
    }
    assert not Dataset.objects.exists() and files_in(upload_dirs[0]) == []


def test_a_bad_cell_past_the_checked_rows_fails_the_job_naming_it_and_keeps_the_file(
    train, settings, client, user, upload_dirs
):
    # given: the web checks 100 rows; row 450 of 500 has a non-number
    settings.MDS_TRAIN_CHECK_ROWS = 100
    content = with_bad_cell(weather_frame(500), row=450, column="wind_speed_ms", value="calm")

    # when: accepted, then failed by the worker's read
    job = train(content)

    # then
    assert job["status"] == "failed"
    assert job["error"] == {
        "code": "bad_cell",
        "message": "Column 'wind_speed_ms', row 450: 'calm' is not a number.",
        "extra": {"column": "wind_speed_ms", "row": 450, "bad_rows": 1},
    }
    dataset = Dataset.objects.get(pk=job["dataset"]["id"])
    assert dataset.n_rows == 500 and dataset.size_bytes == len(content)
    with dataset.file.open("rb") as handle:
        assert handle.read() == content  # kept for inspection, byte for byte
    # ...and listed with its error on the dataset's admin page
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    page = client.get(f"/admin/training/dataset/{dataset.pk}/change/").content.decode()
    assert f"Job {job['id']}" in page and "Failed" in page and "row 450" in page


def test_an_upload_too_short_for_the_checked_rows_is_checked_whole(api_client, csv_upload, model_name, settings):
    # given: fewer rows than checked, too few to train on
    settings.MDS_TRAIN_CHECK_ROWS = 100
    content = csv_bytes(weather_frame(5))

    # when
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload(content)})

    # then
    assert response.status_code == 400 and response.json()["code"] == "too_few_rows"


def test_a_large_upload_is_streamed_not_held_in_the_web_process(api_client, user, model_name, tmp_path, upload_dirs):
    # given: a ~30 MB CSV in a multipart body on disk, read by the server as it would read a socket
    content = big_csv(300_000)
    assert len(content) > 25 * 1024 * 1024
    body_path = tmp_path / "body"
    body_path.write_bytes(encode_multipart(BOUNDARY, {"file": _named(content, "big.csv")}))
    token = api_token(user)

    # when: the request is served under tracemalloc (Python's and numpy's allocations)
    with body_path.open("rb") as body:
        environ = RequestFactory()._base_environ(
            PATH_INFO="/train",
            QUERY_STRING=f"model_name={model_name}&n_estimators=2",
            REQUEST_METHOD="POST",
            CONTENT_TYPE=MULTIPART_CONTENT,
            CONTENT_LENGTH=str(body_path.stat().st_size),
            HTTP_AUTHORIZATION=f"Token {token}",
            **{"wsgi.input": body},
        )
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            response = ClientHandler()(environ)
            peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()

    # then: accepted and stored whole, with a small fraction of the file's size allocated on the way
    assert response.status_code == 202, response.content
    dataset = Dataset.objects.get()
    assert dataset.size_bytes == len(content) and dataset.n_rows == 300_000
    assert dataset.sha256 == hashlib.sha256(content).hexdigest()
    assert peak < len(content) / 4, f"peak {peak / 1e6:.1f} MB for a {len(content) / 1e6:.1f} MB upload"


def test_the_admin_upload_streams_and_checks_as_the_api_does(client, db, settings, upload_dirs):
    # given
    settings.MDS_TRAIN_MAX_UPLOAD_BYTES = 10_000
    client.force_login(StaffUserFactory())

    # when
    response = client.post(
        "/admin/training/dataset/add/",
        {"file": _named(big_csv(1_000), "big.csv"), "target": "target", "timestamp": "timestamp"},
    )

    # then: the form says why, nothing is stored
    assert response.status_code == 200
    assert "at most 10000 are accepted" in response.content.decode()
    assert not Dataset.objects.exists()


def _named(content: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="text/csv")
