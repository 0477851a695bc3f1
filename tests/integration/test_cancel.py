"""Cancelling a job the stack's worker is running: it stops mid-fit, its MLflow run ends KILLED, no version."""

import pytest

from tests.factories import weather_csv

from .support import job_wait, train

pytestmark = pytest.mark.integration


def test_a_running_job_cancelled_over_the_api_stops_and_registers_nothing(
    stack, http, mlflow_client, unique_model_name
):
    # given: a job whose forest takes a while, seen fitting on the worker (its run open in MLflow)
    accepted = train(
        http,
        stack,
        weather_csv(days=240, seed=5),
        f"{unique_model_name}.csv",
        model_name=unique_model_name,
        n_estimators=1500,
        max_leaf_nodes=300,
    )
    fitting = job_wait(
        http, stack, accepted["id"], until=lambda job: job["status"] != "queued" and job["progress"] > 0.1
    )
    assert (fitting["status"], fitting["stage"]) == ("running", "training"), fitting
    assert mlflow_client.get_run(fitting["mlflow_run_id"]).info.status == "RUNNING"

    # when
    response = http.post(f"{stack.web_url}/train/{accepted['id']}/cancel", timeout=10)

    # then: cancelled at once, and the worker lets go of it at its next checkpoint
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    run_id = fitting["mlflow_run_id"]
    job_wait(http, stack, accepted["id"], until=lambda job: mlflow_client.get_run(run_id).info.status != "RUNNING")
    job = http.get(f"{stack.web_url}/train/{accepted['id']}", timeout=10).json()
    assert (job["status"], job["registered_version"], job["stage"]) == ("cancelled", None, "training")
    assert job["progress"] < 0.9
    assert mlflow_client.get_run(run_id).info.status == "KILLED"
    assert mlflow_client.search_model_versions(f"name = '{unique_model_name}'") == []

    # then: a second cancel is a conflict
    again = http.post(f"{stack.web_url}/train/{accepted['id']}/cancel", timeout=10)
    assert again.status_code == 409 and again.json()["code"] == "job_finished"
