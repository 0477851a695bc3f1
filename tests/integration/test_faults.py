"""Faults on the real stack: nothing lost, nothing stuck, no 500 while a dependency is down.

Each case stops a service with ``scripts/stack.sh stop SERVICE`` (or cuts the services' database connections)
while a job trains and clients send ``/train``, ``GET /train/<id>`` and ``/predict``, brings it back, and
asserts the outcome table (``outcomes.py``). The stack runs with production timing for the dispatcher and the
heartbeat (``MDS_DISPATCH_INTERVAL``, ``MDS_HEARTBEAT_STALE_AFTER``).
"""

import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest
import requests

from tests.factories import weather_csv

from .outcomes import (
    RECOVERY_SECONDS,
    Traffic,
    TwinWorker,
    answer,
    assert_answers_allowed,
    assert_jobs_succeed_once,
    assert_no_job_left_behind,
)
from .support import (
    job_wait,
    own_redis,
    stack_service,
    stack_token,
    stored_keys,
    train,
    worker_frozen,
    worker_log,
)

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 10
# Long enough on two cores that a service can be stopped while the job trains, short enough to keep the suite quick.
BUSY_TRAINING = {"n_estimators": 150, "max_depth": 10}
SERVICES = ("redis", "s3", "mlflow")


@pytest.fixture
def trainer(stack) -> requests.Session:
    """A client of its own per test: training is throttled per user (``MDS_THROTTLE_TRAIN``, 30 an hour)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack_token(stack, f'faults_{uuid.uuid4().hex[:8]}')}"
    return session


@dataclass(frozen=True)
class Served:
    name: str
    loaded: int
    cold: dict[str, int]


@pytest.fixture(scope="module")
def served(stack, http, mlflow_client) -> Served:
    """A model whose version 1 the inference server has loaded, and one version per service it has not."""
    name = f"it_served_{os.getpid()}"
    job = job_wait(http, stack, train(http, stack, weather_csv(days=120), "served.csv", model_name=name)["id"])
    assert job["status"] == "success", job
    first = mlflow_client.get_model_version(name, "1")
    for number, _ in enumerate(SERVICES, start=2):
        # The same files under another number, registered straight in MLflow and adopted by a maintainer (the stack's
        # token): a version MDS serves that this process has never loaded.
        mlflow_client.create_model_version(
            name, source=first.source, run_id=first.run_id, tags=first.tags, model_id=first.source.split("/")[-1]
        )
        adopted = http.post(f"{stack.web_url}/models/{name}/versions/{number}/adopt", timeout=120)
        assert adopted.status_code == 201, adopted.text
    assert predict(http, stack, name, 1).status_code == 200
    return Served(name, 1, {service: number for number, service in enumerate(SERVICES, start=2)})


def predict(http, stack, name: str, version: int) -> requests.Response:
    return http.post(
        f"{stack.inference_url}/predict",
        params={"model_name": name, "version": version},
        files={"file": ("rows.csv", weather_csv(days=5), "text/csv")},
        timeout=60,
    )


def predict_once_back(http, stack, name: str, version: int):
    """The first answer other than a 503 to /predict of ``version`` (a service just started may need a moment)."""
    deadline = time.monotonic() + 30
    while True:
        result = answer("cold", predict(http, stack, name, version))
        if result.status != 503 or time.monotonic() > deadline:
            return result
        assert result.allowed, result
        time.sleep(1)


def busy(job: dict) -> bool:
    return job["status"] in ("success", "failed") or job["stage"] in ("training", "registering")


def dataset_keys(s3, stack) -> set[str]:
    return stored_keys(s3, stack.datasets_bucket, "datasets/")


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_stopped_under_load_loses_no_job_and_answers_no_500(
    service, stack, http, trainer, s3, mlflow_client, served, unique_model_name
):
    if service == "redis" and not own_redis(stack):
        pytest.fail("the stack uses a Redis it did not start; give it its own (STACK_REDIS_PORT)", pytrace=False)
    # given: a job training right now, and clients at work
    running = train(
        trainer, stack, weather_csv(days=1500, seed=31), f"{unique_model_name}.csv", model_name=unique_model_name,
        **BUSY_TRAINING,
    )  # fmt: skip
    job_wait(http, stack, running["id"], until=busy, timeout=90)
    keys_before = dataset_keys(s3, stack)
    csv = weather_csv(days=120, seed=32)
    cold = served.cold[service]

    loaded = (served.name, served.loaded)
    with Traffic(stack, trainer.headers, model_name=unique_model_name, csv=csv, loaded=loaded) as traffic:
        # when: the service stops for a while, then comes back
        stack_service(stack, "stop", service)
        try:
            time.sleep(OUTAGE_SECONDS)
            during = answer("cold", predict(http, stack, served.name, cold))
            readiness = requests.get(f"{stack.web_url}/health/ready", timeout=30).json()
        finally:
            stack_service(stack, "start", service)
        returned = time.monotonic()
        time.sleep(3)
    after = predict_once_back(http, stack, served.name, cold)

    # then: the outcome table
    assert_answers_allowed([*traffic.answers, during, after])
    jobs = [running["id"], *traffic.accepted]
    assert_jobs_succeed_once(http, stack, mlflow_client, jobs, since=returned)
    assert_no_job_left_behind(http, stack)

    # then: readiness named the dependency that was down
    dependency = {"redis": "broker"}.get(service, service)
    assert (readiness["status"], readiness["dependencies"][dependency]["ok"]) == ("degraded", False), readiness
    # then: a loaded version served throughout; one never loaded needs MLflow and the artifacts in S3
    assert [item.status for item in traffic.of("predict")] == [200] * len(traffic.of("predict"))
    assert (during.status, after.status) == ((200, 200) if service == "redis" else (503, 200))
    trains = [item.status for item in traffic.of("train")]
    if service == "s3":
        # Storage down: refused, and nothing half-stored (one object per accepted job, none for a refused one).
        assert 503 in trains, trains
        assert len(dataset_keys(s3, stack) - keys_before) == len(traffic.accepted)
    else:
        # Accepted means kept, whether or not the broker or MLflow was there.
        assert trains == [202] * len(trains)


def test_database_connections_cut_mid_request_and_mid_task(
    stack, http, trainer, mlflow_client, served, unique_model_name
):
    assert stack.database_url, "stack.env names no database (MDS_STACK_DATABASE_URL): restart the stack"
    # given: a job training right now, and clients at work
    running = train(
        trainer, stack, weather_csv(days=1500, seed=33), f"{unique_model_name}.csv", model_name=unique_model_name,
        **BUSY_TRAINING,
    )  # fmt: skip
    job_wait(http, stack, running["id"], until=busy, timeout=90)
    csv = weather_csv(days=120, seed=34)

    # when: every connection of the services to their database is cut, again and again, for a while
    loaded = (served.name, served.loaded)
    with Traffic(
        stack, trainer.headers, model_name=unique_model_name, csv=csv, loaded=loaded, train_every=2
    ) as traffic:
        with ConnectionCutter(stack.database_url, every=0.3) as cutter:
            time.sleep(OUTAGE_SECONDS)
        returned = time.monotonic()
        time.sleep(3)

    # then: the outcome table
    assert cutter.cut > 0
    assert_answers_allowed(traffic.answers)
    assert traffic.accepted, traffic.answers
    assert_jobs_succeed_once(http, stack, mlflow_client, [running["id"], *traffic.accepted], since=returned)
    assert_no_job_left_behind(http, stack)
    # Predictions of a loaded version need no database but a token check every MDS_TOKEN_CACHE_TTL seconds.
    assert [item.status for item in traffic.of("predict")] == [200] * len(traffic.of("predict"))


def test_twenty_trainings_at_once_make_twenty_versions(stack, mlflow_client, http, trainer, unique_model_name):
    # given
    csv = weather_csv(days=90, seed=35)

    def post(_) -> requests.Response:
        with requests.Session() as session:
            session.headers.update(trainer.headers)
            return session.post(
                f"{stack.web_url}/train",
                params={"model_name": unique_model_name, "n_estimators": 5},
                files={"file": ("twenty.csv", csv, "text/csv")},
                timeout=120,
            )

    # when
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    sent = time.monotonic()

    # then: twenty accepted jobs, twenty successes, twenty distinct versions
    assert [response.status_code for response in responses] == [202] * 20, [r.text for r in responses]
    ids = [response.json()["id"] for response in responses]
    assert len(set(ids)) == 20
    # Trained one after another by one worker process: the backlog drains at the machine's pace.
    jobs = assert_jobs_succeed_once(http, stack, mlflow_client, ids, since=sent)
    assert sorted(job["registered_version"] for job in jobs) == list(range(1, 21))
    assert_no_job_left_behind(http, stack)


def test_a_hung_worker_loses_its_job_to_another_one_within_two_minutes(stack, http, mlflow_client, unique_model_name):
    """Whole-worker loss with production timing: no visibility timeout involved, only heartbeat and dispatcher.

    The worker is frozen (SIGSTOP), not killed: its process stays alive, so nothing but the heartbeat's age can
    tell that it no longer works, as with a worker on a machine that went away. A second worker (another name,
    as a replacement machine would be) runs the dispatcher and takes the job over; when the frozen one wakes up,
    it finds the job taken and registers nothing.
    """
    # given: a job training right now on the stack's worker
    accepted = train(
        http, stack, weather_csv(days=3000, seed=36), f"{unique_model_name}.csv", model_name=unique_model_name,
        n_estimators=200, max_depth=12,
    )  # fmt: skip
    running = job_wait(http, stack, accepted["id"], until=lambda job: job["stage"] == "training", timeout=90)
    assert (running["status"], running["attempts"]) == ("running", 1)
    log_before = len(worker_log(stack))

    # when: the worker hangs, and another worker is there
    with worker_frozen(stack):
        hung_at = time.monotonic()
        with TwinWorker(stack) as twin:
            resumed = job_wait(http, stack, accepted["id"], until=lambda job: job["attempts"] >= 2, timeout=150)
            resumed_after = time.monotonic() - hung_at
            job = job_wait(http, stack, accepted["id"], timeout=180)

    # then: taken over within two minutes, because its heartbeat went stale, and finished once
    assert resumed_after < RECOVERY_SECONDS, resumed
    assert (job["status"], job["attempts"]) == ("success", 2), job
    takeover = rf"(Re-queuing|Taking over) training job {job['id']} .*heartbeat is \d+ s old"
    assert re.search(takeover, twin.log.read_text(errors="replace")), takeover
    # then: the hung execution, awake again, stops and registers nothing: it notices the takeover at its next
    # checkpoint, or its time limit (which ran on while it was frozen) stops it first
    stopped = re.compile(r"was taken over|Soft time limit \(\d+s\) exceeded for training\.tasks\.training_job_execute")
    deadline = time.monotonic() + 120
    while not stopped.search(worker_log(stack)[log_before:]) and time.monotonic() < deadline:
        time.sleep(1)
    assert stopped.search(worker_log(stack)[log_before:])
    assert_jobs_succeed_once(http, stack, mlflow_client, [job["id"]], since=time.monotonic())
    assert_no_job_left_behind(http, stack)


class ConnectionCutter:
    """``pg_terminate_backend`` on every connection to the services' database, every ``every`` seconds."""

    def __init__(self, database_url: str, *, every: float):
        self.database_url, self.every = database_url, every
        self.cut = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ConnectionCutter":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://"), autocommit=True) as db:
            while not self._stop.wait(self.every):
                self.cut += db.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]
