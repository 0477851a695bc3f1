import re

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from knox.crypto import hash_token
from knox.models import AuthToken

from registry_mirror.models import ModelVersion
from tests.factories import StaffUserFactory, csv_bytes, weather_csv, weather_frame
from training.models import Dataset, TrainingJob


@pytest.fixture
def staff_client(client, db):
    client.force_login(StaffUserFactory())
    return client


def running_job(**fields) -> TrainingJob:
    dataset = Dataset.objects.create(
        file="datasets/x.csv", original_name="weather.csv", sha256="a" * 64, size_bytes=1, n_rows=1, n_columns=1
    )
    return TrainingJob.objects.create(
        dataset=dataset,
        model_name="weather",
        target_column="target",
        timestamp_column="timestamp",
        status=TrainingJob.Status.RUNNING,
        stage=TrainingJob.Stage.TRAINING,
        progress=0.24,
        celery_task_id="celery-task-0001",
        claimed_by="worker-host:4242",
        **fields,
    )


def section(page: str, title: str) -> str:
    """The HTML of the admin fieldset headed ``title``."""
    match = re.search(
        rf'<fieldset class="module aligned ([^"]*)"[^>]*>\s*(?:<details>\s*<summary>)?\s*<h2[^>]*>{title}</h2>', page
    )
    assert match, f"no fieldset {title!r}"
    return page[match.start() : page.index("</fieldset>", match.start())]


def test_uploading_a_csv_in_the_admin_trains_a_model(staff_client, django_capture_on_commit_callbacks, model_name):
    # given
    upload = SimpleUploadedFile("weather.csv", weather_csv(60), content_type="text/csv")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/training/dataset/add/",
            {"file": upload, "model_name": model_name, "target": "target", "timestamp": "timestamp"},
        )

    # then
    assert response.status_code == 302
    dataset = Dataset.objects.get()
    job = TrainingJob.objects.get(dataset=dataset)
    assert job.status == TrainingJob.Status.SUCCEEDED and job.registered_version == 1
    assert staff_client.get(f"/admin/training/trainingjob/{job.pk}/change/").status_code == 200
    assert staff_client.get(f"/admin/training/dataset/{dataset.pk}/change/").status_code == 200


def test_a_bad_csv_in_the_admin_shows_the_problem_and_stores_nothing(staff_client):
    # given
    upload = SimpleUploadedFile("bad.csv", csv_bytes(weather_frame(30).drop(columns=["target"])))

    # when
    response = staff_client.post(
        "/admin/training/dataset/add/", {"file": upload, "target": "target", "timestamp": "timestamp"}
    )

    # then
    assert response.status_code == 200
    assert "Missing column: target." in response.content.decode()
    assert not Dataset.objects.exists()


def test_admin_lists_need_a_staff_login(client, db):
    # when
    response = client.get("/admin/training/trainingjob/")

    # then
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_issue_token_creates_the_user_and_prints_a_new_token_each_time(db, capsys):
    # when
    call_command("issue_token", "alice")
    first = capsys.readouterr().out.strip()
    call_command("issue_token", "alice")
    second = capsys.readouterr().out.strip()

    # then: two tokens, each stored as its digest only
    assert first != second
    digests = set(AuthToken.objects.filter(user__username="alice").values_list("digest", flat=True))
    assert digests == {hash_token(first), hash_token(second)}


def test_an_invalid_model_name_in_the_admin_is_refused(staff_client):
    # given
    upload = SimpleUploadedFile("weather.csv", weather_csv(60), content_type="text/csv")

    # when
    response = staff_client.post(
        "/admin/training/dataset/add/",
        {"file": upload, "model_name": "a'b c", "target": "target", "timestamp": "timestamp"},
    )

    # then
    assert response.status_code == 200
    assert "Registered model name" in response.content.decode()
    assert not Dataset.objects.exists()


def test_the_upload_links_to_its_job_whose_page_is_read_only_with_links(
    staff_client, django_capture_on_commit_callbacks, model_name
):
    # given
    upload = SimpleUploadedFile("weather.csv", weather_csv(60), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/training/dataset/add/",
            {"file": upload, "model_name": model_name, "target": "target", "timestamp": "timestamp"},
            follow=True,
        )
    job = TrainingJob.objects.get()
    job_url = f"/admin/training/trainingjob/{job.pk}/change/"

    # when
    page = staff_client.get(job_url).content.decode()
    dataset_page = staff_client.get(f"/admin/training/dataset/{job.dataset.pk}/change/").content.decode()

    # then
    assert f'href="{job_url}"' in response.content.decode()
    assert f'href="{job_url}"' in dataset_page
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    version = ModelVersion.objects.get(name=model_name, version=job.registered_version)
    assert f'href="/admin/registry_mirror/modelversion/{version.pk}/change/"' in page
    assert f"/#/experiments/{version.experiment_id}/runs/{job.mlflow_run_id}?workflowType=machine_learning" in page


def test_a_running_jobs_page_follows_it_through_the_api_with_the_admin_session(staff_client):
    # given
    job = running_job()

    # when
    page = staff_client.get(f"/admin/training/trainingjob/{job.pk}/change/").content.decode()
    api = staff_client.get(f"/train/{job.pk}")

    # then: the page's script polls the job's API url, which answers the signed-in admin user
    poll = re.search(r'<script id="job-poll" type="application/json">(.*?)</script>', page)
    assert poll and f'"url": "/train/{job.pk}"' in poll.group(1)
    assert '"finished": ["success", "failed", "cancelled"]' in poll.group(1)
    assert 'src="/static/training/job_progress.js"' in page
    assert (
        '<span id="job-status">Running</span>' in page
        and '<span id="job-stage">Training and converting</span>' in page
    )
    assert 'value="0.240"' in page and "24%" in page
    assert api.status_code == 200 and api.json()["progress"] == 0.24 and api.json()["status"] == "running"


def test_a_finished_jobs_page_is_not_polled(staff_client):
    # given
    job = running_job()
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingJob.Status.CANCELLED)

    # when
    page = staff_client.get(f"/admin/training/trainingjob/{job.pk}/change/").content.decode()

    # then
    assert "job-poll" not in page and "job_progress.js" not in page


def test_the_job_page_shows_named_rounded_metrics_a_parameter_table_and_folds_the_internals_away(staff_client):
    # given
    job = running_job(
        metrics={"r2": 0.6215178476734462, "mae": 77.46666666666677, "rmse": 109.64189755745757,
                 "onnx_max_rel_diff": 1.0783283156491309e-07, "interval_coverage_90": 0.875},
        counts={"n_train": 96, "n_test": 24},
        params={"n_estimators": 10, "max_depth": None, "test_size": 0.2},
        params_used={"n_estimators": 10, "estimate": {"nodes": 2390}},
    )  # fmt: skip

    # when
    page = staff_client.get(f"/admin/training/trainingjob/{job.pk}/change/").content.decode()

    # then: what a data scientist reads, named and rounded
    results = section(page, "Results")
    shown = [
        ("R²", "0.6215"),
        ("MAE", "77.47"),
        ("RMSE", "109.6"),
        ("90 % interval coverage", "0.875"),
        ("ONNX vs scikit-learn, max. relative difference", "1.08e-07"),
        ("holdout rows", "24"),
    ]
    for label, value in shown:
        assert f"<tr><td>{label}</td><td>{value}</td></tr>" in results
    assert "0.6215178" not in page and "{" not in results
    parameters = section(page, "Parameters")
    assert "<tr><td>n_estimators</td><td>10</td></tr>" in parameters
    assert "<tr><td>max_depth</td><td>None</td></tr>" in parameters
    assert "<tr><td>estimate.nodes</td><td>2390</td></tr>" in parameters
    # and the internals in a collapsed section of their own, after it all
    internals = section(page, "Internals")
    assert "collapse" in re.search(r'<fieldset class="([^"]*)"', internals).group(1)
    for internal in ("celery-task-0001", "worker-host:4242", str(job.key)):
        assert internal in internals and page.index(internal) > page.index(results)
    # times to the second
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", section(page, "Times"))


def test_the_job_page_lists_the_backtest_folds_and_the_leaderboard(staff_client):
    # given
    fold = {
        "train_rows": 40,
        "test_rows": 20,
        "test_from": "2024-03-01T00:00:00+00:00",
        "test_to": "2024-03-20T00:00:00+00:00",
    }
    job = running_job(
        backtest={
            "estimator": "extra_trees", "gap": 0,
            "folds": [
                {"fold": 1, **fold, "mae": 51.234, "rmse": 60.0, "r2": 0.5},
                {"fold": 2, **fold, "mae": 49.0, "rmse": 58.0, "r2": 0.6},
            ],
            "mae_mean": 50.117, "mae_sd": 1.579, "rmse_mean": 59.0, "rmse_sd": 1.414, "r2_mean": 0.55, "r2_sd": 0.0707,
            "leaderboard": [
                {"estimator": "extra_trees", "mae_mean": 50.117, "rmse_mean": 59.0, "r2_mean": 0.55},
                {"estimator": "random_forest", "mae_mean": 55.0, "rmse_mean": 63.0, "r2_mean": 0.5},
            ],
        }
    )  # fmt: skip

    # when
    page = staff_client.get(f"/admin/training/trainingjob/{job.pk}/change/").content.decode()

    # then
    results = section(page, "Results")
    first = (
        "<tr><td>fold 1: 2024-03-01T00:00 → 2024-03-20T00:00, 40 rows fit</td><td>MAE 51.23 · RMSE 60 · R² 0.5</td>"
    )
    assert first in results
    assert (
        "<tr><td>extra_trees, mean ± sd</td><td>MAE 50.12 ± 1.579 · RMSE 59 ± 1.414 · R² 0.55 ± 0.0707</td></tr>"
        in results
    )
    assert "<tr><td>candidate random_forest</td><td>MAE 55 · RMSE 63 · R² 0.5</td></tr>" in results


def admin_upload(model_name: str) -> dict:
    return {
        "file": SimpleUploadedFile("weather.csv", weather_csv(60), content_type="text/csv"),
        "model_name": model_name,
        "target": "target",
        "timestamp": "timestamp",
    }


def job_link(job: TrainingJob) -> str:
    return f'<a href="/admin/training/trainingjob/{job.pk}/change/">Job {job.pk}</a> ({job.model_name})'


@pytest.mark.django_db(transaction=True)
def test_after_an_upload_that_trained_in_process_the_message_says_the_job_succeeded(client, model_name):
    # given: no transaction of the test's, so the upload commits and its job runs in the request, as in-process
    client.force_login(StaffUserFactory())

    # when
    response = client.post("/admin/training/dataset/add/", admin_upload(model_name))

    # then
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    job = TrainingJob.objects.get()
    assert f"{job_link(job)} trained on this file: version 1 is registered." in messages
    assert not any("queued" in message for message in messages)


def test_after_an_upload_whose_job_waits_for_a_worker_the_message_says_queued_and_links_it(
    staff_client, django_capture_on_commit_callbacks, model_name
):
    # when: the job is sent once the test's transaction commits, as a worker would take it later
    with django_capture_on_commit_callbacks(execute=False):
        response = staff_client.post("/admin/training/dataset/add/", admin_upload(model_name))

    # then
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert f"{job_link(TrainingJob.objects.get())} is queued on this file — its page follows it." in messages
