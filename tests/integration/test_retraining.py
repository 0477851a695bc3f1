"""Retraining on the real stack: append the next period to a model's series and retrain it through the Celery
worker (the join reads the segments back from S3); the new version is the challenger, the champion stays."""

import json

import pytest

from tests.factories import csv_bytes, weather_frame

from .support import job_wait, train

pytestmark = pytest.mark.integration


def test_append_then_retrain_through_the_worker(stack, http, mlflow_client, unique_model_name):
    # given: version 1 trained on 120 days
    frame = weather_frame(200)
    first = job_wait(
        http,
        stack,
        train(
            http,
            stack,
            csv_bytes(frame.iloc[:120]),
            "first.csv",
            model_name=unique_model_name,
            n_estimators=10,
            backtest=0,
        )["id"],
    )
    assert first["status"] == "success", first

    # when: the next 80 days are appended and the last 90 days retrained
    appended = http.post(
        f"{stack.web_url}/models/{unique_model_name}/data",
        files={"file": ("next.csv", csv_bytes(frame.iloc[120:]), "text/csv")},
    )
    accepted = http.post(f"{stack.web_url}/models/{unique_model_name}/retrain", params={"window": "90d"})
    assert appended.status_code == 201, appended.text
    assert accepted.status_code == 202, accepted.text
    job = job_wait(http, stack, accepted.json()["id"])

    # then: version 2 on the last 90 days: rows 111-120 of the first file and all 80 of the append
    assert job["status"] == "success", job
    assert (job["trigger"], job["registered_version"], job["lineage"]["n_rows"]) == ("manual", 2, 90)
    assert [(part["row_first"], part["row_last"]) for part in job["lineage"]["segments"]] == [(111, 120), (1, 80)]
    model = http.get(f"{stack.web_url}/models/{unique_model_name}").json()
    assert model["aliases"] == {"champion": 1, "challenger": 2}
    version = mlflow_client.get_model_version(unique_model_name, "2")
    assert json.loads(version.tags["mds.lineage"])["n_rows"] == 90
