"""``python -m mds`` against the real stack: the job runs in the Celery worker and the client follows it."""

import os
import re
import signal
import subprocess
import sys

import pytest

from .support import ROOT, job_wait

pytestmark = pytest.mark.integration
SAMPLE = ROOT / "sample_data" / "time_series_weather.csv"


def mds_process(stack, *args: str) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "MDS_URL": stack.web_url, "MDS_TOKEN": stack.token}
    return subprocess.Popen(
        [sys.executable, "-m", "mds", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_train_follows_the_worker_and_prints_the_version(stack, http, unique_model_name):
    # when
    process = mds_process(
        stack, "train", str(SAMPLE), "--model-name", unique_model_name, "--n-estimators", "10", "--interval", "0.3"
    )
    stdout, stderr = process.communicate(timeout=300)

    # then
    assert process.returncode == 0, stderr
    match = re.fullmatch(rf"job (\d+) success: {unique_model_name} version 1 \(r2 .+\)\n", stdout)
    assert match, stdout
    assert f"Job {match.group(1)} accepted: {stack.web_url}/train/{match.group(1)}" in stderr
    assert f"job {match.group(1)} success" in stderr  # the follow bar's last state
    job = http.get(f"{stack.web_url}/train/{match.group(1)}").json()
    assert job["registered_version"] == 1


def test_ctrl_c_while_following_asks_the_server_to_cancel(stack, http, unique_model_name):
    # given: a job long enough to be interrupted while it runs
    process = mds_process(
        stack, "train", str(SAMPLE), "--model-name", unique_model_name, "--n-estimators", "1500", "--interval", "0.3"
    )
    accepted = ""
    while "accepted" not in accepted:
        accepted = process.stderr.readline()
        assert accepted or process.poll() is None, "the client ended before the job was accepted"
    job_id = int(re.search(r"Job (\d+) accepted", accepted).group(1))
    job_wait(http, stack, job_id, until=lambda job: job["status"] == "running", timeout=120)

    # when
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    # then
    assert process.returncode == 130, stderr
    assert f"cancelling job {job_id}" in stderr
    if "cancel_unsupported" in stderr:
        assert f"Job {job_id} goes on" in stderr
        job_wait(http, stack, job_id, timeout=300)
        pytest.skip("this server has no POST /train/<id>/cancel: the client said so and the job went on")
    # A running job may still be stopping when the server answers: the job's own record settles it.
    assert re.search(rf"Job {job_id} is (cancelled|running)", stderr), stderr
    job = job_wait(http, stack, job_id, timeout=120)
    assert job["status"] == "cancelled"
    assert job["registered_version"] is None
