"""Batch jobs through outages of the real stack's Redis, S3 and MLflow, as ``test_faults.py`` puts training jobs
through them: an accepted job is never lost and ends with every row, in order, once its dependency is back; a
request the stack cannot keep is a 503 with ``Retry-After`` and nothing half-stored.

Each case stops a service with ``scripts/stack.sh stop SERVICE`` and waits for states (the job's status, the
worker's retry in its log), never for a time. Where the outage must meet chunks mid-flight, the worker is frozen
(SIGSTOP) while the service stops, so the chunk in hand meets the outage whatever the machine's speed.
"""

import re
import time
import uuid

import numpy as np
import pytest
import requests

from tests.factories import csv_bytes, weather_frame

from .outcomes import RECOVERY_SECONDS, answer
from .support import (
    batch_result_ids,
    batch_rows,
    batch_wait,
    model_train,
    own_redis,
    stack_service,
    stored_keys,
    worker_frozen,
    worker_log,
)

pytestmark = pytest.mark.integration

SMALL_ROWS = 2_000
# About 1.6 of the stack's MDS_BATCH_CHUNK_BYTES: two chunks, the first a full one.
TWO_CHUNKS = 1.6


def rows(n: int, seed: int) -> bytes:
    frame = weather_frame(n, seed=seed)
    frame.insert(0, "id", np.arange(len(frame)))
    return csv_bytes(frame)


@pytest.fixture(scope="module")
def small_csv() -> bytes:
    return rows(SMALL_ROWS, seed=41)


@pytest.fixture(scope="module")
def version(stack, http, small_csv) -> tuple[str, int]:
    """A version the worker has loaded (its first batch job scored), so that an outage meets the chunks' own
    reads and writes, not the model's download."""
    name = f"it_batch_faults_{uuid.uuid4().hex[:8]}"
    model = (name, model_train(http, stack, name))
    accepted = batch_post(http, stack, model, small_csv)
    assert accepted.status_code == 202, accepted.text
    assert_every_row(http, stack, batch_wait(http, stack, accepted.json()["url"]), SMALL_ROWS)
    return model


def batch_post(http, stack, model: tuple[str, int], csv: bytes) -> requests.Response:
    name, number = model
    return http.post(
        f"{stack.web_url}/batch",
        params={"model_name": name, "version": number, "passthrough": "id"},
        files={"file": ("rows.csv", csv, "text/csv")},
        timeout=120,
    )


def batch_ids(http, stack) -> set[int]:
    listed = http.get(f"{stack.web_url}/batch", params={"limit": 500}, timeout=30)
    assert listed.status_code == 200, listed.text
    return {job["id"] for job in listed.json()["results"]}


def retried(stack, since: int, error: str) -> re.Match | None:
    """The worker's log, past offset ``since``, shows a chunk given back for a retry because of ``error``."""
    pattern = rf"batch_chunk_execute_task\[[^\]]+\] retry: Retry in \d+s: {error}"
    return re.search(pattern, worker_log(stack)[since:])


def wait_for_retry(stack, since: int, error: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not retried(stack, since, error):
        if time.monotonic() > deadline:
            pytest.fail(f"no chunk retried on {error} within {timeout:.0f}s:\n{worker_log(stack)[since:][-3000:]}")
        time.sleep(0.5)


def assert_every_row(http, stack, job: dict, n: int) -> None:
    assert job["status"] == "success", job
    assert job["rows_done"] == job["rows_total"] == n, job
    assert batch_result_ids(http, stack, job) == list(range(n))


def test_redis_down_when_a_batch_job_arrives(stack, http, version, small_csv):
    if not own_redis(stack):
        pytest.fail("the stack uses a Redis it did not start; give it its own (STACK_REDIS_PORT)", pytrace=False)
    # given: the broker is down
    stack_service(stack, "stop", "redis")
    try:
        # when: a batch job arrives
        accepted = batch_post(http, stack, version, small_csv)
        # then: accepted, as /train accepts: the job row is the outbox, its plan waits for the sweeper
        assert accepted.status_code == 202, accepted.text
        queued = batch_wait(http, stack, accepted.json()["url"], until=lambda _: True)
        assert (queued["status"], queued["chunks_total"]) == ("queued", 0), queued
    finally:
        stack_service(stack, "start", "redis")

    # then: once the broker is back, the sweeper sends the plan and the job ends with every row
    job = batch_wait(http, stack, accepted.json()["url"], timeout=RECOVERY_SECONDS)
    assert_every_row(http, stack, job, SMALL_ROWS)


def test_s3_down_when_a_batch_job_arrives(stack, http, s3, version, small_csv):
    # given: the storage is down
    jobs_before = batch_ids(http, stack)
    keys_before = stored_keys(s3, stack.datasets_bucket, "batch/")
    stack_service(stack, "stop", "s3")
    try:
        # when: a batch job arrives
        refused = answer("batch", batch_post(http, stack, version, small_csv))
    finally:
        stack_service(stack, "start", "s3")

    # then: 503, Retry-After, the storage named; no job and no object kept
    assert (refused.status, refused.code) == (503, "storage_unavailable"), refused
    assert refused.allowed and "S3" in (refused.message or ""), refused
    assert batch_ids(http, stack) == jobs_before
    assert stored_keys(s3, stack.datasets_bucket, "batch/") == keys_before


def test_s3_down_while_chunks_run(stack, http, version):
    # given: a job of two chunks, running, its worker frozen with a chunk in hand
    n_rows = batch_rows(stack, TWO_CHUNKS)
    data = rows(n_rows, seed=42)
    accepted = batch_post(http, stack, version, data)
    assert accepted.status_code == 202, accepted.text
    url = accepted.json()["url"]
    batch_wait(http, stack, url, until=lambda job: job["status"] != "queued", timeout=RECOVERY_SECONDS)
    log_before = len(worker_log(stack))
    with worker_frozen(stack):
        running = batch_wait(http, stack, url, until=lambda _: True)
        assert running["status"] == "running" and running["chunks_done"] < running["chunks_total"] == 2, running
        # when: the storage stops under it
        stack_service(stack, "stop", "s3")
    try:
        # then: the chunk is given back and retried, as a training job retries, not failed
        wait_for_retry(stack, log_before, "StorageUnavailable")
        assert batch_wait(http, stack, url, until=lambda _: True)["status"] == "running"
    finally:
        stack_service(stack, "start", "s3")

    # then: once the storage is back, the job ends with every row, none doubled
    job = batch_wait(http, stack, url, timeout=RECOVERY_SECONDS)
    assert_every_row(http, stack, job, n_rows)


def test_mlflow_down_when_a_batch_job_starts(stack, http, small_csv, unique_model_name):
    # given: a version no worker has loaded yet, and MLflow down
    model = (unique_model_name, model_train(http, stack, unique_model_name))
    log_before = len(worker_log(stack))
    stack_service(stack, "stop", "mlflow")
    try:
        # when: a batch job of it arrives
        accepted = batch_post(http, stack, model, small_csv)
        # then: accepted (MDS's own record names the version), planned, and its chunk retried: the job waits
        assert accepted.status_code == 202, accepted.text
        wait_for_retry(stack, log_before, "MlflowUnavailable")
        waiting = batch_wait(http, stack, accepted.json()["url"], until=lambda _: True)
        assert (waiting["status"], waiting["chunks_done"]) == ("running", 0), waiting
    finally:
        stack_service(stack, "start", "mlflow")

    # then: once MLflow is back, the job ends with every row
    job = batch_wait(http, stack, accepted.json()["url"], timeout=RECOVERY_SECONDS)
    assert_every_row(http, stack, job, SMALL_ROWS)
