"""The inference server in place of `mlflow models serve`: MLflow's own scoring client against a running server.

The server runs as deployed (granian, its own process and data directory) with a pinned model and anonymous
/invocations, the setting a team uses to swap `mlflow models serve -m models:/NAME@champion` for MDS.
"""

import os
import signal
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from tests.factories import weather_frame

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "rf_scoring"
FEATURES = list(weather_frame(1).columns[1:-1])
TRAIN = """
import io, os
from django.contrib.auth import get_user_model
from training import ml, services
user, _ = get_user_model().objects.get_or_create(username="trainer")
job = services.training_job_start(file=io.BytesIO(open(os.environ["TRAIN_CSV"], "rb").read()), file_name="w.csv",
    user=user, model_name=os.environ["MODEL_NAME"], target="target", timestamp="timestamp",
    params=ml.TrainingParams(n_estimators=10, max_depth=6))
job = services.training_job_wait(job_id=job.pk, timeout=300)
assert job.registered_version, (job.status, job.error_message)
print(job.registered_version)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A data directory with one trained version and a token, and the inference server over it."""
    home = tmp_path_factory.mktemp("scoring")
    (home / "tmp").mkdir()
    outside = ("DATABASE_URL", "CACHE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR")
    env = {key: value for key, value in os.environ.items() if key not in outside and not key.startswith("MDS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="mds_project.settings.local",
        DJANGO_DEBUG="false",
        MDS_DATA_DIR=str(home),
        TMPDIR=str(home / "tmp"),
        PYTHONPATH=str(ROOT),
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    weather_frame(400).to_csv(home / "train.csv", index=False)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    trained = subprocess.run(
        [*manage, "shell", "-c", TRAIN],
        cwd=ROOT,
        env={**env, "TRAIN_CSV": str(home / "train.csv"), "MODEL_NAME": MODEL_NAME},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    version = int(trained.stdout.split()[-1])
    token = subprocess.run(
        [*manage, "issue_token", "caller", "--role", "predictor"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    port = free_port()
    serving = {
        **env,
        "MDS_SERVE_MODEL": f"{MODEL_NAME}@champion",
        "MDS_INVOCATIONS_ANONYMOUS": "true",
        "INFERENCE_ACCESSLOG": "false",
    }
    log = home / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "mds_project.inference_server", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=serving,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    yield {"port": port, "process": process, "version": version, "token": token, "log": log}
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_mlflows_scoring_client_is_answered_by_the_pinned_model(server):
    # given: MLflow's client, as a team's code uses it against `mlflow models serve`
    client = ScoringServerClient("127.0.0.1", server["port"])
    client.wait_server_ready(timeout=90, scoring_server_proc=server["process"])
    rows = weather_frame(6, seed=3)[FEATURES]
    url = f"http://127.0.0.1:{server['port']}"
    expected = requests.post(
        f"{url}/predict?model_name={MODEL_NAME}",
        data=rows.to_csv(index=False),
        headers={"Content-Type": "text/csv", "Authorization": f"Token {server['token']}"},
        timeout=60,
    )

    # when
    version = client.get_version()
    answer = client.invoke(rows)
    with_params = client.invoke(rows, params={"predict_method": "predict"})
    as_csv = requests.post(
        f"{url}/invocations", data=rows.to_csv(index=False), headers={"Content-Type": "text/csv"}, timeout=60
    )

    # then
    assert version == metadata.version("mlflow")
    assert expected.status_code == 200 and expected.headers["X-Model-Version"] == str(server["version"])
    predictions = answer.get_predictions()
    assert isinstance(predictions, pd.DataFrame) and len(predictions) == len(rows)
    # The engine is chosen per request (ONNX computes in float32): the same values within its tolerance.
    np.testing.assert_allclose(predictions.iloc[:, 0], expected.json()["predictions"], rtol=1e-4)
    np.testing.assert_allclose(with_params.get_predictions().iloc[:, 0], predictions.iloc[:, 0], rtol=1e-4)
    assert as_csv.status_code == 200 and list(as_csv.json()) == ["predictions"]
    assert as_csv.headers["X-Model-Version"] == str(server["version"]) and as_csv.headers["X-Request-Id"]


def test_an_mlflow_client_error_carries_mlflows_error_shape(server):
    # given
    client = ScoringServerClient("127.0.0.1", server["port"])
    client.wait_server_ready(timeout=90, scoring_server_proc=server["process"])

    # when
    with pytest.raises(Exception, match="error code 400") as refused:
        client.invoke(pd.DataFrame({"not_a_feature": [1.0]}))
    ping = requests.get(f"http://127.0.0.1:{server['port']}/ping", timeout=10)
    metrics = requests.get(f"http://127.0.0.1:{server['port']}/metrics", timeout=10)

    # then
    assert '"error_code": "BAD_REQUEST"' in str(refused.value) or '"error_code":"BAD_REQUEST"' in str(refused.value)
    assert ping.status_code == 200
    counted = [line for line in metrics.text.splitlines() if line.startswith("mds_predictions_total{")]
    assert any(f'model="{MODEL_NAME}"' in line and 'status="400"' not in line for line in counted), counted
