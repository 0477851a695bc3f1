"""Upload to prediction across the real stack: web, S3, Redis, the worker, the MLflow server and inference."""

import re
import time

import psycopg
import pytest
import requests
import yaml

from tests.factories import weather_csv

from .support import job_wait, sha256, train, worker_log

pytestmark = pytest.mark.integration


def task_successes(stack, job_id: int, *, timeout: float = 30) -> int:
    """How often the worker logged the job's task as succeeded: it logs it a moment after the job row says so."""
    with psycopg.connect(stack.database_url.replace("postgres://", "postgresql://")) as db:
        (task_id,) = db.execute("SELECT celery_task_id FROM training_trainingjob WHERE id = %s", [job_id]).fetchone()
    succeeded = re.compile(rf"training_job_execute_task\[{re.escape(task_id)}\] succeeded")
    deadline = time.monotonic() + timeout
    while not (count := len(succeeded.findall(worker_log(stack)))) and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


def test_upload_trains_on_the_worker_registers_in_mlflow_and_serves_both_formats(
    stack, http, s3, mlflow_client, unique_model_name
):
    # given
    csv = weather_csv(days=200, seed=11)
    file_name = f"{unique_model_name}.csv"
    keys_before = dataset_keys(s3, stack)

    # when
    accepted = train(http, stack, csv, file_name, model_name=unique_model_name, n_estimators=20, max_depth=8)
    job = job_wait(http, stack, accepted["id"])

    # then: the upload is an object of its own in the datasets bucket, byte for byte
    assert accepted["status"] == "queued"
    keys = sorted(dataset_keys(s3, stack) - keys_before)
    assert len(keys) == 1, keys
    stored = s3.get_object(Bucket=stack.datasets_bucket, Key=keys[0])["Body"].read()
    assert sha256(stored) == sha256(csv) == job["dataset"]["sha256"]
    # ...and private: no public ACL, so an anonymous path-style GET is refused
    assert requests.get(f"{stack.s3_endpoint}/{stack.datasets_bucket}/{keys[0]}", timeout=10).status_code == 403

    # then: the job ran on the worker process, once
    assert job["status"] == "success", job
    assert job["attempts"] == 1
    assert task_successes(stack, accepted["id"]) == 1

    # then: the MLflow server has the run, its metrics and params, and one new version with both flavors
    run = mlflow_client.get_run(job["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["r2"] == pytest.approx(job["metrics"]["r2"])
    assert run.data.metrics["rmse"] == pytest.approx(job["metrics"]["rmse"])
    assert run.data.params["n_estimators"] == "20"
    assert run.data.tags["mds.dataset_sha256"] == sha256(csv)
    versions = mlflow_client.search_model_versions(f"name = '{unique_model_name}'")
    assert [int(v.version) for v in versions] == [job["registered_version"]] == [1]
    version = versions[0]
    assert version.run_id == job["mlflow_run_id"]
    assert version.status == "READY"

    # then: the run logged one model, whose files are objects in the mlflow bucket, with both flavors in its MLmodel
    logged = mlflow_client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert [model.status for model in logged] == ["READY"]
    model_id = logged[0].model_id
    artifact_keys = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.artifacts_bucket)
        for item in page.get("Contents", [])
        if model_id in item["Key"]
    }
    by_name = {key.rsplit("/", 1)[-1]: key for key in artifact_keys}
    assert {"MLmodel", "model.onnx", "model.pkl"} <= set(by_name), sorted(artifact_keys)
    onnx_bytes = s3.get_object(Bucket=stack.artifacts_bucket, Key=by_name["model.onnx"])["Body"].read()
    assert sha256(onnx_bytes) == version.tags["mds.onnx_sha256"]
    mlmodel = yaml.safe_load(s3.get_object(Bucket=stack.artifacts_bucket, Key=by_name["MLmodel"])["Body"].read())
    assert {"sklearn", "onnx", "python_function"} <= set(mlmodel["flavors"])

    # then: inference on its own port answers for both formats with that version
    answers = {}
    for model_format in ("onnx", "sklearn"):
        response = http.post(
            f"{stack.inference_url}/predict",
            params={"model_name": unique_model_name, "version": "1", "format": model_format},
            files={"file": ("rows.csv", csv, "text/csv")},
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Version"] == "1"
        body = response.json()
        assert body["model"] == {"name": unique_model_name, "version": 1, "format": model_format}
        answers[model_format] = body["predictions"]
    assert len(answers["onnx"]) == len(answers["sklearn"]) == 200
    assert answers["onnx"] == pytest.approx(answers["sklearn"], rel=1e-4)
    # then: without a format the server picks one and names it: sklearn's compiled walk, the sklearn request above
    # having loaded the forest
    default = http.post(
        f"{stack.inference_url}/predict",
        params={"model_name": unique_model_name, "version": "1"},
        files={"file": ("rows.csv", csv, "text/csv")},
    )
    assert default.status_code == 200, default.text
    assert default.headers["X-Model-Format"] == default.json()["model"]["format"] == "sklearn"
    assert default.json()["predictions"] == answers["sklearn"]


def test_predict_is_refused_without_a_token(stack, unique_model_name):
    # given: a client with no Authorization header
    # when
    response = requests.post(
        f"{stack.inference_url}/predict",
        params={"model_name": unique_model_name},
        files={"file": ("rows.csv", weather_csv(days=5), "text/csv")},
        timeout=10,
    )

    # then
    assert response.status_code == 401


def dataset_keys(s3, stack) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.datasets_bucket, Prefix="datasets/")
    return {item["Key"] for page in pages for item in page.get("Contents", [])}
