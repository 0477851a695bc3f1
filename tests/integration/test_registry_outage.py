"""A training job outlives an MLflow server outage: the worker retries with backoff and registers one version."""

import pytest

from tests.factories import weather_csv

from .support import job_wait, stack_service, train

pytestmark = pytest.mark.integration


def test_job_retries_while_mlflow_is_down_and_registers_once_it_is_back(stack, http, mlflow_client, unique_model_name):
    # given: the MLflow server is stopped
    stack_service(stack, "stop", "mlflow")
    try:
        # when: a job trains and fails to reach MLflow at least once...
        accepted = train(
            http, stack, weather_csv(days=200, seed=21), f"{unique_model_name}.csv", model_name=unique_model_name
        )
        retrying = job_wait(http, stack, accepted["id"], until=lambda job: job["attempts"] >= 2, timeout=90)
    finally:
        # ...and the server comes back
        stack_service(stack, "start", "mlflow")

    # then: the job was kept for a retry (queued between attempts), not failed, and now finishes with one version
    assert retrying["status"] in ("queued", "running"), retrying
    job = job_wait(http, stack, accepted["id"], timeout=240)
    assert job["status"] == "success", job
    versions = mlflow_client.search_model_versions(f"name = '{unique_model_name}'")
    assert [(int(v.version), v.run_id) for v in versions] == [(1, job["mlflow_run_id"])]
