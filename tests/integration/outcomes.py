"""The fault suite's instruments: clients at work while a fault happens, and the outcome table every case asserts.

The outcome table: no 500, only 200/202 or a 503 with ``Retry-After`` and a ``{code, message}`` body; every
accepted job ends ``success`` with exactly one MLflow version, the queue draining again within two minutes of the
dependency's return; no job is left queued or running.
"""

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from .support import TERMINAL, Stack, job_wait, worker_pid

RECOVERY_SECONDS = 120


@dataclass(frozen=True)
class Answer:
    what: str
    status: int
    retry_after: str | None
    code: str | None
    message: str | None

    @property
    def allowed(self) -> bool:
        if self.status in (200, 202):
            return True
        return self.status == 503 and bool(self.retry_after) and bool(self.code) and bool(self.message)


def answer(what: str, response: requests.Response) -> Answer:
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return Answer(
        what, response.status_code, response.headers.get("Retry-After"), body.get("code"), body.get("message")
    )


class Traffic:
    """A client thread sending ``/train`` every ``train_every`` seconds and, twice a second, ``/predict`` of a
    loaded version and ``GET /train/<id>`` of the last accepted job; every answer and accepted job is kept."""

    def __init__(
        self, stack: Stack, auth: dict, *, model_name: str, csv: bytes, loaded: tuple[str, int], train_every=4.0
    ):
        self.stack, self.auth, self.model_name, self.csv = stack, auth, model_name, csv
        self.loaded, self.train_every = loaded, train_every
        self.answers: list[Answer] = []
        self.accepted: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def of(self, what: str) -> list[Answer]:
        return [item for item in self.answers if item.what == what]

    def _run(self) -> None:
        session = requests.Session()
        session.headers.update(self.auth)
        next_train = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_train:
                next_train = time.monotonic() + self.train_every
                self._send(session, "train", self._train)
            self._send(session, "predict", self._predict)
            if self.accepted:
                url = f"{self.stack.web_url}/train/{self.accepted[-1]}"
                self._send(session, "job", lambda s, url=url: s.get(url, timeout=30))
            self._stop.wait(0.5)

    def _send(self, session, what, call) -> None:
        try:
            response = call(session)
        except requests.RequestException as exc:
            # A client that gets no answer at all (the server is ours and never stops here) is a failure too.
            self.answers.append(Answer(what, 0, None, None, str(exc)))
            return
        self.answers.append(answer(what, response))
        if what == "train" and response.status_code in (200, 202):
            self.accepted.append(response.json()["id"])

    def _train(self, session):
        return session.post(
            f"{self.stack.web_url}/train",
            params={"model_name": self.model_name, "n_estimators": 10},
            files={"file": ("traffic.csv", self.csv, "text/csv")},
            timeout=60,
        )

    def _predict(self, session):
        name, version = self.loaded
        return session.post(
            f"{self.stack.inference_url}/predict",
            params={"model_name": name, "version": version},
            files={"file": ("rows.csv", self.csv, "text/csv")},
            timeout=30,
        )


def assert_answers_allowed(answers: list[Answer]) -> None:
    refused = [item for item in answers if not item.allowed]
    assert not refused, refused


def assert_jobs_succeed_once(http, stack: Stack, mlflow_client, job_ids: list[int], *, since: float) -> list[dict]:
    """Every job ends ``success``, and each registered exactly one version of its model: its own.

    The queue must keep draining: some job finishes within ``RECOVERY_SECONDS`` of ``since`` (the dependency's
    return, monotonic) and of every finish before it. A backlog that one worker trains one job after another
    may take longer as a whole on a slow machine; a job that never ends still fails the test.
    """
    finished: dict[int, dict] = {}
    last_progress = since
    while len(finished) < len(job_ids):
        for job_id in job_ids:
            if job_id not in finished:
                job = job_wait(http, stack, job_id, until=lambda _: True, timeout=30)
                if job["status"] in TERMINAL:
                    finished[job_id] = job
                    last_progress = time.monotonic()
        if len(finished) < len(job_ids) and time.monotonic() > last_progress + RECOVERY_SECONDS:
            stuck = [job_id for job_id in job_ids if job_id not in finished]
            raise AssertionError(f"no job of {stuck} ended within {RECOVERY_SECONDS}s of the last one")
        time.sleep(0.2)
    jobs = [finished[job_id] for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["success"] * len(jobs), [j for j in jobs if j["status"] != "success"]
    for name in {job["model_name"] for job in jobs}:
        mine = sorted((job["registered_version"], job["mlflow_run_id"]) for job in jobs if job["model_name"] == name)
        versions = mlflow_client.search_model_versions(f"name = '{name}'")
        assert sorted((int(v.version), v.run_id) for v in versions) == mine
    return jobs


def assert_no_job_left_behind(http, stack: Stack) -> None:
    """No job of the whole stack is still queued or running once the dust has settled."""
    listed = http.get(f"{stack.web_url}/train", params={"limit": 1000}, timeout=30)
    assert listed.status_code == 200, listed.text
    unfinished = [(job["id"], job["status"]) for job in listed.json()["results"] if job["status"] not in TERMINAL]
    assert unfinished == []


class TwinWorker:
    """A second training worker with the stack worker's own command and environment but another name, started
    beside it (another machine, as far as Celery is concerned), stopped at exit."""

    def __init__(self, stack: Stack, name: str = "twin"):
        pid = worker_pid(stack)
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        self.env = dict(
            item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item
        )
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        self.log = stack.directory / "logs" / f"{name}.log"
        self.pidfile = stack.directory / "run" / f"{name}.pid"
        self.name = name
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "TwinWorker":
        argv = [arg.decode() for arg in self.argv]
        argv[argv.index("--hostname") + 1] = f"{self.name}@%h"
        argv[argv.index("--pidfile") + 1] = str(self.pidfile)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.pidfile.unlink(missing_ok=True)
