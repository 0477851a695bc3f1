"""Serving in the admin: the panel on a version's page, the prediction log and the monitoring reports."""

import re

import pytest

from core.display import number
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
    assert f"<td>{number(live_mae)}</td>" in page
    assert f"<td>{number(version.mae)}</td>" in page
    assert f"@champion v{first} holdout" in page
    assert 'id="drift-table"' in page and "temperature_c" in page
    assert "No report yet" not in page


def test_a_version_page_shows_the_holdout_interval_coverage_and_no_drift_for_features_nobody_sent(
    staff_client, model_name, train
):
    # given: a trained version nobody asked for predictions yet
    train()
    version = ModelVersion.objects.get(name=model_name)

    # when
    page = staff_client.get(f"/admin/registry_mirror/modelversion/{version.pk}/change/").content.decode()

    # then: the coverage measured at training, per level, on the holdout's rows
    holdout_coverage = re.search(r'<td class="interval-coverage">(.*?)</td>', page).group(1)
    n_test = int(version.metrics["n_test"])
    for level in ("80", "90", "95"):
        coverage = number(version.metrics[f"interval_coverage_{level}"])
        assert f"{level} %: {coverage} of {n_test} rows" in holdout_coverage
    # and no PSI for a feature with no logged rows: "no data", not a reassuring 0
    drift = re.search(r'<table id="drift-table">(.*?)</table>', page, re.DOTALL).group(1)
    assert "<tr><td>temperature_c</td><td>no data</td><td>-</td></tr>" in drift
    assert drift.count("no data") == len(re.findall(r"<tr><td>", drift)) > 1


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
