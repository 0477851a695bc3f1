"""Clients and helpers for the integration suite: the stack's coordinates, job polling, worker control."""

import contextlib
import csv
import hashlib
import io
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("success", "failed", "cancelled")


@dataclass(frozen=True)
class Stack:
    web_url: str
    inference_url: str
    token: str
    mlflow_uri: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    datasets_bucket: str
    artifacts_bucket: str
    directory: Path
    visibility_timeout: int
    database_url: str
    # Production's 64 MiB unless the stack was started with another MDS_BATCH_CHUNK_BYTES (CI: 8 MiB).
    batch_chunk_bytes: int = 64 * 1024 * 1024

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


def stack_from_env() -> Stack:
    env = os.environ
    return Stack(
        web_url=env["MDS_STACK_WEB_URL"],
        inference_url=env["MDS_STACK_INFERENCE_URL"],
        token=env["MDS_STACK_TOKEN"],
        mlflow_uri=env["MDS_STACK_MLFLOW_URI"],
        s3_endpoint=env["MDS_STACK_S3_ENDPOINT"],
        s3_access_key=env["MDS_STACK_S3_ACCESS_KEY"],
        s3_secret_key=env["MDS_STACK_S3_SECRET_KEY"],
        datasets_bucket=env["MDS_STACK_DATASETS_BUCKET"],
        artifacts_bucket=env["MDS_STACK_ARTIFACTS_BUCKET"],
        directory=Path(env["MDS_STACK_DIR"]),
        visibility_timeout=int(env.get("MDS_STACK_VISIBILITY_TIMEOUT", "3600")),
        database_url=env.get("MDS_STACK_DATABASE_URL", ""),
        batch_chunk_bytes=int(env.get("MDS_STACK_BATCH_CHUNK_BYTES", 64 * 1024 * 1024)),
    )


def batch_rows(stack: Stack, chunks: float) -> int:
    """Rows of ``tests.factories.weather_frame`` (with an ``id`` column in front) whose CSV fills about ``chunks``
    of the stack's batch chunks: the suite's multi-chunk files follow the stack's MDS_BATCH_CHUNK_BYTES."""
    import numpy as np

    from tests.factories import csv_bytes, weather_frame

    sample = weather_frame(2_000, seed=1)
    sample.insert(0, "id", np.arange(1_000_000, 1_000_000 + len(sample)))
    bytes_per_row = len(csv_bytes(sample)) / len(sample)
    return int(chunks * stack.batch_chunk_bytes / bytes_per_row) + 1


def s3_client(stack: Stack, access_key: str, secret_key: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


def service_environ(stack: Stack, service: str) -> dict[str, str]:
    """The environment a running service of the stack was started with (/proc, as its owner)."""
    pid = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "pid", service],
        env={**os.environ, "STACK_DIR": str(stack.directory)},
        check=True,
        timeout=30,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.strip()
    raw = Path(f"/proc/{int(pid)}/environ").read_bytes().split(b"\0")
    return dict(entry.decode(errors="replace").partition("=")[::2] for entry in raw if entry)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def train(http: requests.Session, stack: Stack, csv: bytes, file_name: str, **params) -> dict:
    response = http.post(f"{stack.web_url}/train", params=params, files={"file": (file_name, csv, "text/csv")})
    assert response.status_code == 202, response.text
    return response.json()


def job_wait(http, stack: Stack, job_id: int, *, until=lambda job: job["status"] in TERMINAL, timeout=180.0) -> dict:
    """Poll GET /train/<id> until ``until(job)`` holds; fail with the last state seen after ``timeout``.

    A 503 (the database briefly unavailable, as some tests make it) is polled through.
    """
    return _poll(http, f"{stack.web_url}/train/{job_id}", until=until, timeout=timeout, every=0.2)


def batch_wait(http, stack: Stack, url: str, *, until=lambda job: job["status"] in TERMINAL, timeout=240.0) -> dict:
    """Poll a batch job (``url``, its ``/batch/<id>`` as POST /batch answered it) as ``job_wait`` polls one of
    training."""
    return _poll(http, f"{stack.web_url}{url}", until=until, timeout=timeout, every=0.1)


def _poll(http, url: str, *, until, timeout: float, every: float) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while True:
        response = http.get(url, timeout=10)
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            job = response.json()
            if until(job):
                return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {url} stuck after {timeout:.0f}s: {job}")
        time.sleep(every)


def model_train(http, stack: Stack, name: str) -> int:
    """A small version of ``name`` (no backtest), trained through the stack; its number."""
    from tests.factories import weather_csv

    job = job_wait(http, stack, train(http, stack, weather_csv(), f"{name}.csv", model_name=name, backtest=0)["id"])
    assert job["status"] == "success", job
    return job["registered_version"]


def batch_result_ids(http, stack: Stack, job: dict) -> list[int]:
    """The ``id`` column of a finished batch job's CSV result (a job scored with ``passthrough=id``), in order."""
    body = http.get(f"{stack.web_url}{job['result_url']}", timeout=60).content
    return [int(row["id"]) for row in csv.DictReader(io.StringIO(body.decode()))]


def stored_keys(s3, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def worker_pid(stack: Stack) -> int:
    return int((stack.directory / "run" / "worker.pid").read_text())


def worker_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def worker_kill(stack: Stack, *, whole: bool) -> None:
    """SIGKILL the worker's pool process, or the whole worker (its main process and pool) with ``whole``."""
    pid = worker_pid(stack)
    if whole:
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        (child,) = worker_children(pid)
        os.kill(child, signal.SIGKILL)


@contextlib.contextmanager
def worker_frozen(stack: Stack):
    """The whole worker (main process, pool, heartbeat threads) stopped with SIGSTOP, as a hung machine's would be,
    and woken up again at exit; yields its pid."""
    pid = worker_pid(stack)
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.killpg(pid, signal.SIGCONT)


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def stack_service(stack: Stack, action: str, service: str) -> str:
    """``scripts/stack.sh start|stop|status [SERVICE]``: one service of the running stack, with its own settings."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), action, service],
        env={**os.environ, "STACK_DIR": str(stack.directory)},
        check=True,
        timeout=120,
        stdout=subprocess.PIPE,
        text=True,
    )
    return result.stdout


def own_redis(stack: Stack) -> bool:
    """Whether the stack started its Redis itself (a shared one is used, never stopped, by scripts/stack.sh)."""
    status = dict(line.split(None, 1) for line in stack_service(stack, "status", "redis").splitlines() if line)
    return status["redis"].startswith("RUNNING")


def worker_start(stack: Stack) -> None:
    stack_service(stack, "start", "worker")


def worker_log(stack: Stack) -> str:
    return (stack.directory / "logs" / "worker.log").read_text(errors="replace")


def stack_token(stack: Stack, username: str, role: str = "trainer") -> str:
    """The API token of ``username`` (made with ``role`` if new), through the stack's ``manage issue_token``."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "manage", "issue_token", username, "--role", role],
        env={**os.environ, "STACK_DIR": str(stack.directory)},
        check=True,
        timeout=120,
        stdout=subprocess.PIPE,
        text=True,
    )
    return result.stdout.strip().splitlines()[-1]
