import pytest
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
    assert f"/#/experiments/{version.experiment_id}/runs/{job.mlflow_run_id}" in page
