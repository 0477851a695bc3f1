"""Batch scoring on the real stack: chunks on a Celery worker, parts in SeaweedFS joined by server-side copy, and a
worker killed mid-chunk losing no row and doubling none."""

import csv
import io

import numpy as np
import pytest

from tests.factories import csv_bytes, weather_frame

from .support import batch_result_ids, batch_rows, batch_wait, model_train, worker_children, worker_kill, worker_pid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def big_csv(stack) -> bytes:
    # Four chunks of the stack's MDS_BATCH_CHUNK_BYTES (CI's 8 MiB: ~28 MB).
    frame = weather_frame(batch_rows(stack, 3.3), seed=11)
    frame.insert(0, "id", np.arange(len(frame)))
    return csv_bytes(frame)


def test_multi_chunk_job_with_a_worker_killed_mid_chunk(stack, http, unique_model_name, big_csv):
    # given: a version, and a file of several chunks being scored
    version = model_train(http, stack, unique_model_name)
    accepted = http.post(
        f"{stack.web_url}/batch",
        params={"model_name": unique_model_name, "version": version, "passthrough": "id"},
        files={"file": ("big.csv", big_csv, "text/csv")},
        timeout=120,
    )
    assert accepted.status_code == 202, accepted.text
    url = accepted.json()["url"]
    running = batch_wait(
        http,
        stack,
        url,
        until=lambda job: job["chunks_done"] >= 1 or job["status"] != "running" and job["status"] != "queued",
    )
    assert running["status"] == "running" and running["chunks_total"] >= 3, running

    # when: the pool process dies in the middle of the next chunk
    (pool_process,) = worker_children(worker_pid(stack))
    worker_kill(stack, whole=False)

    # then: the job completes with exactly the input's rows, in order
    job = batch_wait(http, stack, url)
    assert job["status"] == "success", job
    n_rows = big_csv.count(b"\n") - 1
    assert job["rows_done"] == job["rows_total"] == n_rows
    assert batch_result_ids(http, stack, job) == list(range(n_rows))
    assert pool_process not in worker_children(worker_pid(stack))


def test_predictions_equal_predict_s(stack, http, unique_model_name):
    version = model_train(http, stack, unique_model_name)
    rows = csv_bytes(weather_frame(500, seed=12))
    params = {"model_name": unique_model_name, "version": version, "format": "onnx"}
    accepted = http.post(f"{stack.web_url}/batch", params=params, data=rows, headers={"Content-Type": "text/csv"})
    job = batch_wait(http, stack, accepted.json()["url"])
    assert job["status"] == "success", job
    body = http.get(f"{stack.web_url}{job['result_url']}").content.decode()
    batch = [float(row["prediction"]) for row in csv.DictReader(io.StringIO(body))]
    predicted = http.post(
        f"{stack.web_url}/predict", params=params, data=rows, headers={"Content-Type": "text/csv"}
    ).json()["predictions"]
    assert batch == predicted
