"""Serving in the admin: the panel on a version's page, the prediction log and the monitoring reports."""

import pytest

from inference.models import PredictionLog
from inference.monitoring import monitoring_reports_record
from inference.prediction_log import prediction_log_flush
from registry_mirror import gateway
from registry_mirror.models import ModelVersion
from registry_mirror.services import registry_mirror_sync
from tests.factories import ModelVersionFactory, StaffUserFactory, csv_bytes, weather_frame


@pytest.fixture
def staff_client(client, db):
    client.force_login(StaffUserFactory())
    return client


def test_a_version_page_shows_live_performance_and_drift_next_to_the_holdout_and_the_champion(
    staff_client, api_client, model_name, train
):
    # given: two versions, @champion on the first, the second with predictions and their actuals
    first, second = train()["registered_version"], train()["registered_version"]
    gateway.model_alias_set(name=model_name, alias="champion", version=first)
    registry_mirror_sync(model_name=model_name)
    rows = weather_frame(20, seed=5)
    answer = api_client.generic(
        "POST", f"/predict?model_name={model_name}&version={second}", csv_bytes(rows), content_type="text/csv"
    ).json()
    prediction_log_flush()
    api_client.post(
        "/feedback", {"request_id": answer["request_id"], "actuals": rows["target"].tolist()}, format="json"
    )
    monitoring_reports_record()
    version = ModelVersion.objects.get(name=model_name, version=second)

    # when
    page = staff_client.get(f"/admin/registry_mirror/modelversion/{version.pk}/change/").content.decode()

    # then
    assert "Live performance and drift" in page
    live_mae = sum(abs(a - p) for a, p in zip(rows["target"], answer["predictions"], strict=True)) / 20
    assert f"{live_mae:.4f}" in page
    assert f"{version.mae:.4f}" in page
    assert f"@champion v{first} holdout" in page
    assert 'id="drift-table"' in page and "temperature_c" in page
    assert "No report yet" not in page


def test_a_version_page_without_mlflow_behind_it_still_renders(staff_client):
    # given: a mirrored version MLflow does not know
    version = ModelVersionFactory()

    # when
    response = staff_client.get(f"/admin/registry_mirror/modelversion/{version.pk}/change/")

    # then
    assert response.status_code == 200
    assert "Live performance and drift" in response.content.decode()


def test_the_prediction_log_is_browsable_read_only(staff_client, api_client, model_name, train):
    # given
    version = train()["registered_version"]
    api_client.generic(
        "POST",
        f"/predict?model_name={model_name}&version={version}",
        csv_bytes(weather_frame(3)),
        content_type="text/csv",
    )
    prediction_log_flush()
    log = PredictionLog.objects.get()

    # when
    listing = staff_client.get("/admin/inference/predictionlog/")
    page = staff_client.get(f"/admin/inference/predictionlog/{log.pk}/change/")

    # then
    assert listing.status_code == page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert "→" in page.content.decode()
    assert staff_client.get("/admin/inference/monitoringreport/").status_code == 200
