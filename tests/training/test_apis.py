from pathlib import PurePosixPath

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from tests.factories import csv_bytes, weather_csv, weather_frame
from training.models import Dataset, TrainingJob


def test_train_accepts_the_csv_and_answers_202_with_the_job(api_client, csv_upload, model_name, user):
    # when
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})

    # then
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert response["Location"].endswith(f"/train/{body['id']}") and body["url"] == response["Location"]
    job = TrainingJob.objects.get(pk=body["id"])
    assert job.model_name == model_name and job.params["n_estimators"] == 5 and job.created_by == user
    dataset = job.dataset
    assert (dataset.n_rows, dataset.n_columns, dataset.uploaded_by) == (120, 10, user)
    assert dataset.file.read() == weather_csv()
    assert body["dataset"]["sha256"] == dataset.sha256 and len(dataset.sha256) == 64


def test_options_can_come_as_form_fields(api_client, csv_upload, model_name):
    # when
    response = api_client.post("/train", {"file": csv_upload(), "model_name": model_name, "max_depth": 4})

    # then
    assert response.status_code == 202
    assert response.json()["params"]["max_depth"] == 4
    assert response.json()["model_name"] == model_name


def test_a_trained_job_reports_its_version_metrics_and_formats(train, model_name):
    # when
    job = train()

    # then
    assert job["status"] == "success" and job["stage"] == "done" and job["error"] is None
    assert job["registered_version"] == 1
    assert job["trained_models"] == [
        {
            "name": model_name,
            "version": 1,
            "run_id": job["mlflow_run_id"],
            "model_uri": f"models:/{model_name}/1",
            "formats": ["onnx", "sklearn"],
        }
    ]
    assert {"r2", "mae", "rmse", "onnx_max_abs_diff", "onnx_max_rel_diff"} <= job["metrics"].keys()
    assert {"interval_coverage_90", "interval_mean_width_90"} <= job["metrics"].keys()
    assert (job["counts"]["n_train"], job["counts"]["n_calibration"], job["counts"]["n_test"]) == (96, 19, 24)
    assert job["duration_seconds"] > 0


def test_two_trainings_give_consecutive_versions(train):
    # when
    first, second = train(), train()

    # then
    assert (first["registered_version"], second["registered_version"]) == (1, 2)


@pytest.mark.django_db(transaction=True)
def test_wait_returns_the_finished_job_in_one_call(api_client, csv_upload, model_name):
    # when: tasks commit for real here, so the eager task runs before the wait starts
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5&wait=60", {"file": csv_upload()})

    # then
    assert response.status_code == 200
    assert response.json()["status"] == "success"
    assert response.json()["trained_models"][0]["version"] == 1


@pytest.mark.django_db(transaction=True)
def test_without_wait_embedded_mode_answers_200_with_the_job_it_ran_in_the_request(api_client, csv_upload, model_name):
    # when: tasks run in-process (no broker), and the commit really happens, so the job runs before the answer
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})

    # then: the answer tells what happened, not "queued"
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["attempts"], body["registered_version"]) == ("success", 1, 1)
    assert response["Location"].endswith(f"/train/{body['id']}")


def test_train_with_the_dataset_storage_down_is_a_503_and_stores_nothing(api_client, csv_upload, s3_down):
    # when
    response = api_client.post("/train?n_estimators=5", {"file": csv_upload()})

    # then
    assert response.status_code == 503, response.json()
    assert response.json()["code"] == "storage_unavailable"
    assert int(response["Retry-After"]) > 0
    assert not Dataset.objects.exists() and not TrainingJob.objects.exists()


def test_get_unknown_job_is_404(api_client):
    # when
    response = api_client.get("/train/999999")

    # then
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_jobs_is_paginated(train, api_client):
    # given
    train()

    # when
    body = api_client.get("/train?limit=1").json()

    # then
    assert body["count"] >= 1 and len(body["results"]) == 1


@pytest.mark.parametrize(
    "method,path", [("post", "/train"), ("get", "/train"), ("get", "/train/1"), ("post", "/predict")]
)
def test_every_endpoint_needs_a_token(db, method, path):
    # when
    response = getattr(APIClient(), method)(path)

    # then
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_wrong_token_is_refused(db):
    # given
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    # when
    response = client.post("/train")

    # then
    assert response.status_code == 401


def _without(column):
    return csv_bytes(weather_frame(30).drop(columns=[column]))


def _with_cell(column, row, value):
    frame = weather_frame(30).astype({column: object})
    frame.loc[row - 1, column] = value
    return csv_bytes(frame)


BAD_UPLOADS = {
    "empty file": (b"", "empty_file", {}),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00", "not_csv", {}),
    "undecodable": ("timestamp,a,target\n2024-01-01,é,1\n".encode("latin-1"), "not_csv", {}),
    "no target": (_without("target"), "missing_columns", {"missing_columns": ["target"]}),
    "no timestamp": (_without("timestamp"), "missing_columns", {"missing_columns": ["timestamp"]}),
    "no feature": (csv_bytes(weather_frame(30)[["timestamp", "target"]]), "no_features", {}),
    "text column": (csv_bytes(weather_frame(30).assign(city="Oslo")), "non_numeric_column", {"column": "city"}),
    "text cell": (_with_cell("humidity_pct", 4, "wet"), "bad_cell", {"column": "humidity_pct", "row": 4}),
    "empty cell": (_with_cell("pressure_hpa", 12, None), "bad_cell", {"column": "pressure_hpa", "row": 12}),
    "bad timestamp": (_with_cell("timestamp", 8, "someday"), "bad_timestamp", {"column": "timestamp", "row": 8}),
    "too few rows": (csv_bytes(weather_frame(6)), "too_few_rows", {"rows": 6}),
    "infinite target": (_with_cell("target", 3, "inf"), "bad_cell", {"column": "target", "row": 3}),
    "float32 overflow": (_with_cell("pressure_hpa", 5, "1e39"), "bad_cell", {"column": "pressure_hpa", "row": 5}),
}


@pytest.mark.parametrize("content,code,extra", BAD_UPLOADS.values(), ids=BAD_UPLOADS.keys())
def test_bad_files_get_a_400_naming_the_problem_and_store_nothing(api_client, csv_upload, content, code, extra):
    # when
    response = api_client.post("/train", {"file": csv_upload(content)})

    # then
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["message"]
    assert extra.items() <= body["extra"].items()
    assert not Dataset.objects.exists() and not TrainingJob.objects.exists()


HINTED_UPLOADS = {
    "semicolons": (csv_bytes(weather_frame(30)).replace(b",", b";"), "one column holding semicolons"),
    "excel": (b"PK\x03\x04\x14\x00\x06\x00" + bytes(64), "Excel workbook"),
    "utf-16": (csv_bytes(weather_frame(30)).decode().encode("utf-16"), "UTF-16"),
    "capitals": (csv_bytes(weather_frame(30).rename(columns={"target": "Target"})), "'Target' for 'target'"),
}


@pytest.mark.parametrize("content,hint", HINTED_UPLOADS.values(), ids=HINTED_UPLOADS.keys())
def test_common_wrong_files_are_told_what_to_do(api_client, csv_upload, content, hint):
    # when
    response = api_client.post("/train", {"file": csv_upload(content)})

    # then
    assert response.status_code == 400
    body = response.json()
    assert hint in body["extra"]["hint"] and body["extra"]["hint"] in body["message"]
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    "query,field",
    [
        ("n_estimators=0", "n_estimators"),
        ("max_depth=-1", "max_depth"),
        ("test_size=1.5", "test_size"),
        ("random_state=abc", "random_state"),
        ("model_name=bad%20name", "model_name"),
        ("wait=100000", "wait"),
    ],
)
def test_bad_options_get_a_400_naming_the_field(api_client, csv_upload, query, field):
    # when
    response = api_client.post(f"/train?{query}", {"file": csv_upload()})

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert response.json()["message"].startswith(f"{field}:")
    assert field in response.json()["extra"]["fields"]


def test_missing_file_gets_a_400_naming_the_field(api_client):
    # when
    response = api_client.post("/train", {})

    # then
    assert response.status_code == 400
    assert response.json()["message"].startswith("file:")


def test_custom_target_and_timestamp_columns(api_client, csv_upload, model_name, django_capture_on_commit_callbacks):
    # given
    frame = weather_frame(60).rename(columns={"target": "demand_mwh", "timestamp": "day"})

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            f"/train?model_name={model_name}&target=demand_mwh&timestamp=day&n_estimators=5",
            {"file": csv_upload(csv_bytes(frame))},
        )

    # then
    job = api_client.get(f"/train/{response.json()['id']}").json()
    assert job["status"] == "success", job
    assert (job["target"], job["timestamp"]) == ("demand_mwh", "day")


def test_a_file_over_the_upload_limit_is_413(api_client, csv_upload, settings):
    # given
    settings.MDS_TRAIN_MAX_UPLOAD_BYTES = 1000

    # when
    response = api_client.post("/train", {"file": csv_upload()})

    # then
    assert response.status_code == 413
    assert response.json()["extra"]["max_bytes"] == 1000
    assert not Dataset.objects.exists()


@pytest.mark.parametrize("name", ["!!!", "é" * 250 + ".csv", "../../etc/passwd", "data set (1).csv"])
def test_any_client_file_name_is_stored_under_a_key_of_our_own(api_client, csv_upload, name):
    # when
    response = api_client.post("/train", {"file": csv_upload(name=name)})

    # then
    assert response.status_code == 202
    dataset = Dataset.objects.get()
    assert dataset.original_name == PurePosixPath(name).name[:255]  # the multipart parser drops any path
    assert dataset.file.name.startswith("datasets/") and dataset.file.name.endswith(".csv")
    assert dataset.file.read() == weather_csv()


@pytest.mark.parametrize(
    "fault, status, code",
    [
        (RuntimeError("a bug"), 500, "internal_error"),
        (OperationalError("server closed the connection unexpectedly"), 503, "database_unavailable"),
    ],
)
def test_a_failure_after_the_file_was_stored_removes_it(
    api_client, csv_upload, monkeypatch, settings, fault, status, code
):
    # given: creating the job fails after the dataset's file was written (a fault injected for the test)
    from pathlib import Path

    from training.services import datasets

    def broken(**kwargs):
        raise fault

    monkeypatch.setattr(datasets, "training_job_create", broken)
    before = set(Path(settings.MEDIA_ROOT).rglob("*.csv"))

    # when
    response = api_client.post("/train", {"file": csv_upload()})

    # then: a database that went away is the client's to retry later, a bug is ours
    assert response.status_code == status and response.json()["code"] == code
    assert ("Retry-After" in response) == (status == 503)
    assert set(Path(settings.MEDIA_ROOT).rglob("*.csv")) == before
    assert not Dataset.objects.exists()
