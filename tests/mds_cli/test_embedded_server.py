"""Real embedded server processes (local settings, SQLite, an MLflow store in their data directory) and the CLI:
jobs train on the server's training thread, Ctrl-C tells the truth, a job whose server was killed mid-training
finishes once the server is back, and an alias moved in one process serves in another within 2 s."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "time_series_weather.csv"


@dataclass
class EmbeddedServer:
    url: str
    process: subprocess.Popen

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def _environment(data_dir: Path, **extra: str) -> dict[str, str]:
    # A server of its own: nothing of the test run's database, broker or MLflow store.
    unwanted = (
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_ARTIFACT_ROOT",
        "MDS_TEST_DATA_DIR",
    )
    env = {key: value for key, value in os.environ.items() if key not in unwanted}
    env.update(
        DJANGO_SETTINGS_MODULE="mds_project.settings.local",
        MDS_DATA_DIR=str(data_dir),
        PYTHONPATH=str(ROOT),
        MDS_PROGRESS_INTERVAL="0.2",
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> tuple[Path, str]:
    """A migrated data directory and a trainer's token in it."""
    path = tmp_path_factory.mktemp("embedded")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=_environment(path),
        check=True,
        timeout=300,
    )
    return path, _token(path, "alice", "trainer")


def _token(data_dir: Path, username: str, role: str) -> str:
    issued = subprocess.run(
        [sys.executable, "manage.py", "issue_token", username, "--role", role],
        cwd=ROOT,
        env=_environment(data_dir),
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return issued.stdout.strip()


@pytest.fixture
def start_server(data_dir):
    servers: list[EmbeddedServer] = []

    def start(**env: str) -> EmbeddedServer:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        log = open(data_dir[0] / f"server-{port}.log", "w")  # noqa: SIM115 (the server's lifetime)
        process = subprocess.Popen(
            command, cwd=ROOT, env=_environment(data_dir[0], **env), stdout=log, stderr=subprocess.STDOUT
        )
        server = EmbeddedServer(url=f"http://127.0.0.1:{port}", process=process)
        servers.append(server)
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (data_dir[0] / log.name).read_text()
            try:
                if requests.get(f"{server.url}/health", timeout=5).ok:
                    return server
            except requests.ConnectionError:
                time.sleep(0.1)

    yield start
    for server in servers:
        server.stop()


def mds(*args: str, server: EmbeddedServer, token: str, **popen) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "MDS_URL": server.url}
    return subprocess.Popen(
        [sys.executable, "-m", "mds", *args, "--token", token],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def job_when(server: EmbeddedServer, token: str, job_id: int, done, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{server.url}/train/{job_id}", headers={"Authorization": f"Token {token}"}, timeout=10)
        job = job.json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id}: {job['status']}/{job['stage']} ({job['progress']})"
        time.sleep(0.1)


def newest_job(server: EmbeddedServer, token: str, model_name: str) -> dict | None:
    answer = requests.get(f"{server.url}/train?limit=1", headers={"Authorization": f"Token {token}"}, timeout=10)
    jobs = [job for job in answer.json()["results"] if job["model_name"] == model_name]
    return jobs[0] if jobs else None


def test_train_is_accepted_at_once_and_followed_to_its_version(start_server, data_dir):
    # given: the embedded server as `make run` serves it (background training is its default)
    server, token = start_server(), data_dir[1]
    model_name = f"cli_{uuid.uuid4().hex[:8]}"

    # when: the job is only accepted
    accepted = mds("train", str(SAMPLE), "--model-name", model_name, "--no-wait", server=server, token=token)
    out, err = accepted.communicate(timeout=120)

    # then: the answer came before the training ended
    assert accepted.returncode == 0, err
    job_id = int(out.split()[1])
    assert out.split()[2].rstrip(":") in ("queued", "running"), out

    # when: a second job is followed to its end
    followed = mds("train", str(SAMPLE), "--model-name", model_name, "--interval", "0.2", server=server, token=token)
    out, err = followed.communicate(timeout=300)

    # then: both trained, one after the other, on the server's training thread
    assert followed.returncode == 0, err
    assert f"success: {model_name} version 2" in out, out + err
    assert job_when(server, token, job_id, lambda job: job["status"] != "queued")["registered_version"] == 1


def test_ctrl_c_after_the_upload_says_the_job_goes_on_and_it_does(start_server, data_dir):
    # given: a server that trains inside the upload's request (background training off), so the CLI waits for the
    # answer while the server trains
    server, token = start_server(MDS_EMBEDDED_BACKGROUND_TRAINING="false"), data_dir[1]
    model_name = f"cli_{uuid.uuid4().hex[:8]}"
    cli = mds("train", str(SAMPLE), "--model-name", model_name, "--n-estimators", "300", server=server, token=token)

    # when: Ctrl-C once the server has stored the job
    deadline = time.monotonic() + 120
    while (job := newest_job(server, token, model_name)) is None:
        assert time.monotonic() < deadline and cli.poll() is None, cli.communicate()[1]
        time.sleep(0.05)
    cli.send_signal(signal.SIGINT)
    err = cli.communicate(timeout=60)[1]

    # then: the CLI says the job goes on there, and it does
    assert cli.returncode == 130, err
    assert "Interrupted after the upload: if the server accepted the file, its job goes on there." in err
    assert "python -m mds jobs" in err
    assert "nothing was trained" not in err
    finished = job_when(server, token, job["id"], lambda job: job["status"] in ("success", "failed", "cancelled"))
    assert finished["status"] == "success", finished


def test_a_job_whose_server_was_killed_mid_training_finishes_once_the_server_is_back(start_server, data_dir):
    # given: a job training on the server's training thread
    server, token = start_server(), data_dir[1]
    model_name = f"cli_{uuid.uuid4().hex[:8]}"
    cli = mds(
        "train",
        str(SAMPLE),
        "--model-name",
        model_name,
        "--n-estimators",
        "400",
        "--no-wait",
        server=server,
        token=token,
    )
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err
    job_id = int(out.split()[1])
    job_when(server, token, job_id, lambda job: job["stage"] == "training")

    # when: the server dies mid-training and starts again
    server.stop(signal.SIGKILL)
    server = start_server()

    # then: the restarted server takes the job up again and finishes it
    job = job_when(server, token, job_id, lambda job: job["status"] in ("success", "failed", "cancelled"))
    assert job["status"] == "success", job
    assert job["registered_version"] == 1
    assert job["attempts"] == 2


def test_an_alias_moved_in_one_process_serves_in_another_within_two_seconds(start_server, data_dir):
    # given: two server processes over one data directory; @champion on version 1, served by the second
    mover, other = start_server(), start_server()
    trainer = {"Authorization": f"Token {data_dir[1]}"}
    maintainer = {"Authorization": f"Token {_token(data_dir[0], 'bob', 'maintainer')}"}
    model_name = f"alias_{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        with open(SAMPLE, "rb") as sample:
            trained = requests.post(
                f"{mover.url}/train?model_name={model_name}&n_estimators=5&wait=120",
                files={"file": sample},
                headers=trainer,
                timeout=180,
            )
        assert trained.status_code in (200, 201, 202) and trained.json()["status"] == "success", trained.text
    rows = "\n".join(SAMPLE.read_text().splitlines()[:3])

    def served_by(server: EmbeddedServer) -> int:
        answer = requests.post(
            f"{server.url}/predict?model_name={model_name}&alias=champion",
            data=rows,
            headers={**trainer, "Content-Type": "text/csv"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return int(answer.headers["X-Model-Version"])

    assert served_by(other) == served_by(mover) == 1

    # when
    moved = requests.post(
        f"{mover.url}/models/{model_name}/aliases/champion",
        json={"version": 2, "force": True},
        headers=maintainer,
        timeout=60,
    )
    assert moved.status_code == 200, moved.text
    started = time.monotonic()

    # then: the moving process serves version 2 at once, the other within 2 s
    assert served_by(mover) == 2
    while served_by(other) != 2:
        assert time.monotonic() - started < 2.0, "the other process still serves version 1"
