"""``python -m mds`` as a user runs it: a separate process, HTTP to a live server that trains in the request."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mds.client import ApiClient, UploadInterrupted
from tests.factories import UserFactory, api_token
from training.models import TrainingJob

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "time_series_weather.csv"

pytestmark = pytest.mark.django_db(transaction=True)


def mds(*args: str, url: str, token: str | None, timeout: float = 300) -> subprocess.CompletedProcess:
    # Only what a user's shell would have: no Django settings, the server and token in MDS_URL / MDS_TOKEN.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "MDS_URL": url}
    if token:
        env["MDS_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "mds", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def token(db) -> str:
    return api_token(UserFactory(role="trainer"))


def test_train_uploads_the_sample_and_prints_the_registered_version(live_server, token):
    # given
    model_name = f"cli_{uuid.uuid4().hex[:8]}"

    # when
    result = mds(
        "train", str(SAMPLE), "--model-name", model_name, "--n-estimators", "5", url=live_server.url, token=token
    )

    # then
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(rf"job (\d+) success: {model_name} version 1 \(r2 [0-9.]+, mae .+\)\n", result.stdout)
    assert match, result.stdout
    assert "uploaded time_series_weather.csv" in result.stderr

    # and: the server agrees, also through `status`
    status = mds("status", match.group(1), "--json", url=live_server.url, token=token)
    assert status.returncode == 0, status.stderr
    assert '"registered_version": 1' in status.stdout
    assert '"n_estimators": 5' in status.stdout


def test_a_refused_file_prints_the_servers_error_and_exits_3(live_server, token, tmp_path):
    # given: a feature cell that is not a number, in data row 2
    path = tmp_path / "bad.csv"
    lines = SAMPLE.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[2].split(",")
    column = header[1]
    row[1] = "wet"
    path.write_text("\n".join([lines[0], lines[1], ",".join(row), *lines[3:]]) + "\n")

    # when
    result = mds("train", str(path), url=live_server.url, token=token)

    # then
    assert result.returncode == 3
    assert result.stdout == ""
    assert f"error: HTTP 400 bad_cell: Column '{column}', row 2: 'wet' is not a number." in result.stderr
    assert f"column={column}, row=2" in result.stderr


def test_a_wrong_token_exits_3_with_the_401(live_server, token):
    result = mds("status", "1", url=live_server.url, token="not-a-token")

    assert result.returncode == 3
    assert "HTTP 401 authentication_failed" in result.stderr


def test_no_server_and_no_file_are_told_apart(closed_port, tmp_path):
    # when
    unreachable = mds("status", "1", url=f"http://127.0.0.1:{closed_port}", token="x", timeout=60)
    missing = mds("train", str(tmp_path / "nothing.csv"), url=f"http://127.0.0.1:{closed_port}", token="x")

    # then
    assert unreachable.returncode == 3
    assert f"unreachable: cannot reach http://127.0.0.1:{closed_port}" in unreachable.stderr
    assert missing.returncode == 2
    assert "nothing.csv is not a file" in missing.stderr


def test_no_wait_prints_the_accepted_job(live_server, token):
    # when: the embedded server finishes the job inside the request, so the job is already done when accepted
    result = mds(
        "train",
        str(SAMPLE),
        "--n-estimators",
        "3",
        "--no-wait",
        "--model-name",
        "cli_nowait",
        url=live_server.url,
        token=token,
    )

    # then
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"job \d+ success: {re.escape(live_server.url)}/train/\d+\n", result.stdout), result.stdout


def test_ctrl_c_during_the_upload_stores_nothing(live_server, token, tmp_path):
    # given
    client = ApiClient(url=live_server.url, token=token)

    def interrupted(sent: int) -> None:
        # Ctrl-C as the first block of the body goes out.
        raise KeyboardInterrupt

    # when
    with pytest.raises(UploadInterrupted) as raised:
        client.training_start(path=SAMPLE, options={"model_name": "cli_never"}, on_sent=interrupted)

    # then
    assert raised.value.uploaded is False
    assert not TrainingJob.objects.filter(model_name="cli_never").exists()
