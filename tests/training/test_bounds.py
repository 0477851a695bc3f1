"""The size bounds through the API: what the training used is on the job and the MLflow run, a forest past a
ceiling is refused before anything is stored."""

import pytest

from registry_mirror import gateway
from training import ml, sizing
from training.models import Dataset, TrainingJob


def test_a_job_shows_the_bounds_the_budget_gave_it_and_the_run_records_them(train, settings):
    # given
    settings.MDS_MAX_MODEL_NODES = 2000

    # when: 10 trees and no size parameter
    job = train()

    # then: 100 leaves per tree keep 10 trees within 2000 nodes
    assert job["status"] == "success" and job["progress"] == 1.0
    assert (job["params"]["max_leaf_nodes"], job["params"]["max_samples"]) == (None, None)
    used = job["params_used"]
    assert (used["n_estimators"], used["max_leaf_nodes"], used["max_samples"]) == (10, 100, None)
    assert 0 < used["estimate"]["nodes"] <= 2000 and used["estimate"]["onnx_bytes"] > 0
    run = gateway.client().get_run(job["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert (run.data.params["max_leaf_nodes"], run.data.params["max_samples"]) == ("100", "None")
    assert run.data.params["target"] == "target"


def test_given_bounds_win_and_big_data_is_subsampled(train, settings):
    # given: a budget of 50 rows per tree, below the 96 training rows
    settings.MDS_TRAIN_MAX_SAMPLES = 50

    # when
    given = train(max_leaf_nodes=7, max_samples=80)
    budgeted = train()

    # then
    assert (given["params_used"]["max_leaf_nodes"], given["params_used"]["max_samples"]) == (7, 80)
    assert budgeted["params_used"]["max_samples"] == 50
    assert gateway.client().get_run(given["mlflow_run_id"]).data.params["max_samples"] == "80"


@pytest.mark.parametrize(
    ("query", "limit"),
    [
        ("n_estimators=2000&max_leaf_nodes=1000000", "onnx"),
        ("n_estimators=100&max_leaf_nodes=50000", "memory"),
    ],
)
def test_a_forest_past_a_ceiling_is_refused_up_front_and_nothing_is_stored(api_client, csv_upload, query, limit):
    # when
    response = api_client.post(f"/train?{query}", {"file": csv_upload()})

    # then
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "model_too_large"
    assert ("ONNX" in body["message"]) == (limit == "onnx") and ("memory" in body["message"]) == (limit == "memory")
    assert body["extra"]["estimate"]["nodes"] > 0 and body["extra"]["limit_bytes"] > 0
    assert not Dataset.objects.exists() and not TrainingJob.objects.exists()


def test_the_worker_refuses_a_forest_past_the_memory_budget_once_it_knows_the_rows(train, settings):
    # given: a budget the request alone just fits in, but not with its data (memory counted per row)
    asked = ml.TrainingParams(n_estimators=10, max_leaf_nodes=2)
    settings.MDS_TRAIN_MEMORY_BUDGET = sizing.size_estimate(asked).memory_bytes

    # when
    job = train(max_leaf_nodes=2)

    # then
    assert job["status"] == "failed" and job["registered_version"] is None
    assert job["error"]["code"] == "model_too_large"


def test_progress_is_in_the_schema_and_zero_while_queued(api_client, csv_upload, model_name):
    # when
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})

    # then
    body = api_client.get(f"/train/{response.json()['id']}").json()
    assert (body["status"], body["progress"], body["params_used"]) == ("queued", 0.0, {})
