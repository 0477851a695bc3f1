"""Batch scoring on the real stack: chunks on a Celery worker, parts in SeaweedFS joined by server-side copy, and a
worker killed mid-chunk losing no row and doubling none."""

import csv
import io
import time

import numpy as np
import pytest

from tests.factories import csv_bytes, weather_csv, weather_frame

from .support import job_wait, train, worker_children, worker_kill, worker_pid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def big_csv() -> bytes:
    # ~27 MB: four chunks of the stack's 8 MiB.
    frame = weather_frame(300_000, seed=11)
    frame.insert(0, "id", np.arange(len(frame)))
    return csv_bytes(frame)


def _model(http, stack, name: str) -> int:
    job = job_wait(http, stack, train(http, stack, weather_csv(), f"{name}.csv", model_name=name, backtest=0)["id"])
    assert job["status"] == "success", job
    return job["registered_version"]


def _batch_wait(http, stack, url: str, until, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"{stack.web_url}{url}", timeout=10).json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"batch job stuck: {job}")
        time.sleep(0.1)


def _ids(http, stack, job) -> list[int]:
    body = http.get(f"{stack.web_url}{job['result_url']}", timeout=60).content
    return [int(row["id"]) for row in csv.DictReader(io.StringIO(body.decode()))]


def test_multi_chunk_job_with_a_worker_killed_mid_chunk(stack, http, unique_model_name, big_csv):
    # given: a version, and a file of several chunks being scored
    version = _model(http, stack, unique_model_name)
    accepted = http.post(
        f"{stack.web_url}/batch",
        params={"model_name": unique_model_name, "version": version, "passthrough": "id"},
        files={"file": ("big.csv", big_csv, "text/csv")},
        timeout=120,
    )
    assert accepted.status_code == 202, accepted.text
    url = accepted.json()["url"]
    running = _batch_wait(
        http,
        stack,
        url,
        lambda job: job["chunks_done"] >= 1 or job["status"] != "running" and job["status"] != "queued",
    )
    assert running["status"] == "running" and running["chunks_total"] >= 3, running

    # when: the pool process dies in the middle of the next chunk
    (pool_process,) = worker_children(worker_pid(stack))
    worker_kill(stack, whole=False)

    # then: the job completes with exactly the input's rows, in order
    job = _batch_wait(http, stack, url, lambda job: job["status"] in ("success", "failed", "cancelled"))
    assert job["status"] == "success", job
    assert job["rows_done"] == job["rows_total"] == 300_000
    assert _ids(http, stack, job) == list(range(300_000))
    assert pool_process not in worker_children(worker_pid(stack))


def test_predictions_equal_predict_s(stack, http, unique_model_name):
    version = _model(http, stack, unique_model_name)
    rows = csv_bytes(weather_frame(500, seed=12))
    params = {"model_name": unique_model_name, "version": version, "format": "onnx"}
    accepted = http.post(f"{stack.web_url}/batch", params=params, data=rows, headers={"Content-Type": "text/csv"})
    job = _batch_wait(http, stack, accepted.json()["url"], lambda job: job["status"] in ("success", "failed"))
    assert job["status"] == "success", job
    body = http.get(f"{stack.web_url}{job['result_url']}").content.decode()
    batch = [float(row["prediction"]) for row in csv.DictReader(io.StringIO(body))]
    predicted = http.post(
        f"{stack.web_url}/predict", params=params, data=rows, headers={"Content-Type": "text/csv"}
    ).json()["predictions"]
    assert batch == predicted
