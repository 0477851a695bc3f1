"""Serving in the admin: the panel on a version's page, the prediction log and the monitoring reports."""

import re

import pytest
from django.test import Client

from core.display import number
from inference.models import BatchJob, PredictionLog
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


def test_batch_jobs_are_listed_and_their_files_download_through_the_admin_session(
    staff_client, api_client, model_name, train, django_capture_on_commit_callbacks, settings
):
    # given: a finished job with one rejected row, started through the API
    settings.MDS_BATCH_CHUNK_BYTES = 4000
    version = train()["registered_version"]
    frame = weather_frame(60, seed=6).astype({"temperature_c": object})
    frame.loc[5, "temperature_c"] = "warm"
    with django_capture_on_commit_callbacks(execute=True):
        job_id = api_client.generic(
            "POST",
            f"/batch?model_name={model_name}&version={version}&on_error=skip",
            csv_bytes(frame),
            content_type="text/csv",
        ).json()["id"]

    # when
    listing = staff_client.get("/admin/inference/batchjob/").content.decode()
    page = staff_client.get(f"/admin/inference/batchjob/{job_id}/change/").content.decode()
    result = staff_client.get(f"/admin/inference/batchjob/{job_id}/result/")
    errors = staff_client.get(f"/admin/inference/batchjob/{job_id}/errors/")

    # then: status, version, rows and progress in the list; the page links both files, which download by session
    assert model_name in listing and "59 / 60 (1 skipped)" in listing and 'value="1.000"' in listing
    assert f'href="/admin/inference/batchjob/{job_id}/result/"' in page
    assert f'href="/admin/inference/batchjob/{job_id}/errors/"' in page
    assert 'name="_save"' not in page
    assert f"on {BatchJob.objects.get(pk=job_id).drift['n_rows']} rows (PSI threshold" in page
    assert result.status_code == 200 and result["Content-Disposition"].startswith("attachment")
    assert b"".join(result.streaming_content).count(b"\n") == 60
    assert b"warm" in b"".join(errors.streaming_content)
    # a job that is not one's own is not found, and there is no result before success
    other = Client()
    other.force_login(StaffUserFactory(is_superuser=False))
    assert other.get(f"/admin/inference/batchjob/{job_id}/result/").status_code in (403, 404)
    BatchJob.objects.filter(pk=job_id).update(status=BatchJob.Status.RUNNING)
    assert staff_client.get(f"/admin/inference/batchjob/{job_id}/result/").status_code == 404
