"""The registry mirror on the real stack: synced by the worker after training, paged over MLflow's REST API."""

import time

import pytest

from core.errors import NotFound
from registry_mirror import gateway
from registry_mirror.models import ModelVersion
from registry_mirror.services import registry_mirror_sync
from tests.factories import mlflow_version, weather_csv

from .support import job_wait, train

pytestmark = pytest.mark.integration


def test_a_training_on_the_stack_appears_in_the_mirror_api(http, stack, unique_model_name):
    # given
    job = train(http, stack, weather_csv(90), "weather.csv", model_name=unique_model_name, n_estimators=10)
    assert job_wait(http, stack, job["id"])["status"] == "success"

    # when: the worker's post-training sync reaches the mirror
    deadline = time.monotonic() + 60
    while True:
        listed = http.get(f"{stack.web_url}/models/{unique_model_name}/versions/", timeout=10)
        if (listed.status_code == 200 and listed.json()["count"] == 1) or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    # then
    assert listed.status_code == 200, listed.text
    (version,) = listed.json()["results"]
    assert version["version"] == 1 and version["formats"] == ["onnx", "sklearn"]
    assert version["metrics"]["r2"] is not None and len(version["dataset_sha256"]) == 64


@pytest.mark.django_db
def test_a_sync_pages_through_the_mlflow_server_and_marks_deletions(stack, settings, unique_model_name):
    # given: seven versions on the MLflow server, listed three at a time
    settings.MLFLOW_TRACKING_URI = stack.mlflow_uri
    settings.MDS_MIRROR_PAGE_SIZE = 3
    run_id = mlflow_version(unique_model_name, metrics={"r2": 0.5}).run_id
    for _ in range(6):
        mlflow_version(unique_model_name, run_id=run_id)
    try:
        # when
        first = registry_mirror_sync(model_name=unique_model_name)
        gateway.client().delete_model_version(unique_model_name, "7")
        second = registry_mirror_sync(model_name=unique_model_name)

        # then: 1 page of models and 3 of versions, then one deletion; plots of a run without them are NotFound
        assert (first.versions_created, first.pages) == (7, 4)
        assert (second.versions_deleted, second.versions_created) == (1, 0)
        assert list(ModelVersion.objects.filter(deleted=True).values_list("version", flat=True)) == [7]
        assert set(ModelVersion.objects.values_list("r2", flat=True)) == {0.5}
        with pytest.raises(NotFound):
            gateway.run_artifact_read(run_id=run_id, path="plots/predicted_vs_actual.png")
    finally:
        gateway.client().delete_registered_model(unique_model_name)
