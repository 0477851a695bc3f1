"""Batch objects on the stack's S3 server (SeaweedFS). Uploads are sent to it as they arrive: a refused or
interrupted upload leaves no object and no unfinished multipart upload behind; an accepted one is stored whole.
Parts are joined by server-side copy where S3 allows it, small neighbours grouped into one uploaded part."""

import io
import socket
import time
import uuid
from urllib.parse import urlsplit

import numpy as np
import pytest
from botocore.config import Config

from inference.batch import objects
from tests.factories import csv_bytes, weather_frame

from .support import batch_result_ids, batch_wait, model_train, stored_keys

pytestmark = pytest.mark.integration

# Over two of the 8 MiB parts an upload is sent in.
ROWS = 400_000


def unfinished_uploads(s3, bucket: str) -> set[str]:
    """Upload ids of multipart uploads begun under ``batch/`` and neither completed nor aborted."""
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix="batch/")
    return {upload["UploadId"] for upload in listed.get("Uploads", [])}


def wait_for(condition, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f}s")
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def big_csv() -> bytes:
    frame = weather_frame(ROWS, seed=17)
    frame.insert(0, "id", np.arange(len(frame)))
    return csv_bytes(frame)


@pytest.fixture(scope="module")
def model(stack, http) -> tuple[str, int]:
    name = f"it_batch_uploads_{uuid.uuid4().hex[:8]}"
    return name, model_train(http, stack, name)


def test_an_upload_streamed_to_storage_is_scored_whole(stack, http, s3, model, big_csv):
    # given
    name, number = model
    uploads_before = unfinished_uploads(s3, stack.datasets_bucket)

    # when: the raw body, sent as it is read
    accepted = http.post(
        f"{stack.web_url}/batch",
        params={"model_name": name, "version": number, "passthrough": "id"},
        data=big_csv,
        headers={"Content-Type": "text/csv"},
        timeout=300,
    )

    # then: stored whole, every row scored in order, no upload left open
    assert accepted.status_code == 202, accepted.text
    job = batch_wait(http, stack, accepted.json()["url"])
    assert job["status"] == "success", job
    assert batch_result_ids(http, stack, job) == list(range(ROWS))
    assert unfinished_uploads(s3, stack.datasets_bucket) <= uploads_before


def test_an_upload_refused_for_its_header_leaves_nothing(stack, http, s3, model, big_csv):
    # given: a passthrough column the file lacks, found once the upload has been sent
    name, number = model
    keys_before = stored_keys(s3, stack.datasets_bucket, "batch/")
    uploads_before = unfinished_uploads(s3, stack.datasets_bucket)

    # when
    refused = http.post(
        f"{stack.web_url}/batch",
        params={"model_name": name, "version": number, "passthrough": "no_such_column"},
        files={"file": ("rows.csv", big_csv, "text/csv")},
        timeout=300,
    )

    # then
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "missing_columns", refused.text
    assert stored_keys(s3, stack.datasets_bucket, "batch/") == keys_before
    assert unfinished_uploads(s3, stack.datasets_bucket) <= uploads_before


def test_a_client_gone_mid_upload_leaves_nothing(stack, s3, model, big_csv):
    # given: a raw body announced whole, of which the client sends only part
    name, number = model
    keys_before = stored_keys(s3, stack.datasets_bucket, "batch/")
    uploads_before = unfinished_uploads(s3, stack.datasets_bucket)
    web = urlsplit(stack.web_url)
    sent = big_csv[: len(big_csv) * 2 // 3]
    head = (
        f"POST /batch?model_name={name}&version={number} HTTP/1.1\r\nHost: {web.hostname}\r\n"
        f"Authorization: Token {stack.token}\r\nContent-Type: text/csv\r\nContent-Length: {len(big_csv)}\r\n\r\n"
    )
    with socket.create_connection((web.hostname, web.port), timeout=60) as client:
        client.sendall(head.encode() + sent)
        # The server has begun sending it to storage.
        begun = wait_for(lambda: unfinished_uploads(s3, stack.datasets_bucket) - uploads_before, "upload begun")

        # when: the client goes away
        client.shutdown(socket.SHUT_RDWR)

    # then: the upload is aborted, nothing is stored
    wait_for(lambda: not (unfinished_uploads(s3, stack.datasets_bucket) & begun), "upload aborted")
    assert stored_keys(s3, stack.datasets_bucket, "batch/") == keys_before


@pytest.fixture
def stack_storage(stack, settings):
    """This process's datasets storage on the stack's S3 server, with the services' keys."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": stack.datasets_bucket,
                "endpoint_url": stack.s3_endpoint,
                "access_key": stack.s3_access_key,
                "secret_key": stack.s3_secret_key,
                "client_config": Config(retries={"max_attempts": 2}),
            },
        },
    }


@pytest.mark.django_db
def test_an_upload_over_the_cap_leaves_nothing(stack, s3, stack_storage, api_client, settings, big_csv):
    # given: a cap the file passes only at its end, after parts of it were sent to storage (the request's
    # declared length, with the multipart framing, is within the allowance checked at once)
    settings.MDS_BATCH_MAX_UPLOAD_BYTES = len(big_csv) - 1000
    keys_before = stored_keys(s3, stack.datasets_bucket, "batch/")
    uploads_before = unfinished_uploads(s3, stack.datasets_bucket)

    assert len(big_csv) > 2 * objects.FOLLOW_PART_BYTES

    # when
    response = api_client.post("/batch?model_name=m", {"file": io.BytesIO(big_csv)}, format="multipart")

    # then
    assert response.status_code == 413, response.json()
    assert response.json()["extra"]["size_bytes"] > settings.MDS_BATCH_MAX_UPLOAD_BYTES
    assert stored_keys(s3, stack.datasets_bucket, "batch/") == keys_before
    assert unfinished_uploads(s3, stack.datasets_bucket) <= uploads_before


@pytest.mark.parametrize(
    ("sizes", "how"),
    [
        # The errors file: a small header, then parts: the header travels with its neighbours.
        ([19, 3 << 20, 3 << 20, 6 << 20, 100], "mixed"),
        # Production's parts: all copied.
        ([6 << 20, 6 << 20, 1000], "copy"),
        # Nothing S3 can copy: streamed.
        ([1000, 2000], "stream"),
    ],
)
def test_parts_are_joined_copying_what_s3_can(stack, s3, stack_storage, sizes, how):
    # given: parts of distinct bytes
    prefix = f"batch/{uuid.uuid4().hex}"
    names, expected = [], b""
    for index, size in enumerate(sizes):
        data = bytes([65 + index]) * size
        s3.put_object(Bucket=stack.datasets_bucket, Key=f"{prefix}/part-{index}", Body=data)
        names.append(f"{prefix}/part-{index}")
        expected += data

    try:
        # when
        done = objects.concatenate(names, f"{prefix}/joined")

        # then
        assert done == how
        joined = s3.get_object(Bucket=stack.datasets_bucket, Key=f"{prefix}/joined")["Body"].read()
        assert joined == expected
    finally:
        for key in stored_keys(s3, stack.datasets_bucket, prefix):
            s3.delete_object(Bucket=stack.datasets_bucket, Key=key)
