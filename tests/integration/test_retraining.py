"""Retraining on the real stack: append the next period to a model's series and retrain it through the Celery
worker (the join reads the segments back from S3); the new version is the challenger, the champion stays. A
policy's trigger goes through the broker to the worker as well."""

import json
import time

import pytest

from tests.factories import csv_bytes, weather_frame

from .support import job_wait, train

pytestmark = pytest.mark.integration


FRAME = weather_frame(200)


def train_first_120_days(http, stack, name: str) -> None:
    first = job_wait(
        http,
        stack,
        train(
            http,
            stack,
            csv_bytes(FRAME.iloc[:120]),
            "first.csv",
            model_name=name,
            n_estimators=10,
            backtest=0,
        )["id"],
    )
    assert first["status"] == "success", first


def append_next_80_days(http, stack, name: str):
    return http.post(
        f"{stack.web_url}/models/{name}/data",
        files={"file": ("next.csv", csv_bytes(FRAME.iloc[120:]), "text/csv")},
    )


def test_append_then_retrain_through_the_worker(stack, http, mlflow_client, unique_model_name):
    # given: version 1 trained on 120 days
    train_first_120_days(http, stack, unique_model_name)

    # when: the next 80 days are appended and the last 90 days retrained
    appended = append_next_80_days(http, stack, unique_model_name)
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


def test_new_data_retrains_through_the_broker_and_the_worker(stack, http, unique_model_name):
    # given: version 1, and a policy that retrains on new data
    train_first_120_days(http, stack, unique_model_name)
    policy = http.put(
        f"{stack.web_url}/models/{unique_model_name}/retrain-policy", json={"enabled": True, "on_new_data": True}
    )
    assert policy.status_code == 200, policy.text

    # when
    appended = append_next_80_days(http, stack, unique_model_name)

    # then: the worker starts one retraining of the whole series, whose version is the challenger
    assert appended.status_code == 201, appended.text
    (started,) = retrainings_wait(http, stack, unique_model_name)
    job = job_wait(http, stack, started["id"])
    assert (job["status"], job["trigger"], job["registered_version"]) == ("success", "new_data", 2), job
    assert job["lineage"]["n_rows"] == 200
    model = http.get(f"{stack.web_url}/models/{unique_model_name}").json()
    assert model["aliases"] == {"champion": 1, "challenger": 2}


def retrainings_wait(http, stack, name: str, timeout: float = 120.0) -> list[dict]:
    """The jobs of ``name`` a policy started, once the worker has created one."""
    deadline = time.monotonic() + timeout
    while True:
        listed = http.get(f"{stack.web_url}/train", params={"limit": 1000}, timeout=30)
        assert listed.status_code == 200, listed.text
        started = [job for job in listed.json()["results"] if job["model_name"] == name and job["trigger"]]
        if started:
            return started
        assert time.monotonic() < deadline, f"no retraining of {name} within {timeout:.0f}s"
        time.sleep(0.5)
