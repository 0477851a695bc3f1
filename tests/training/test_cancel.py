"""Cancelling a training job: the API contract, and a real execution stopping at its next checkpoint."""

import io
import threading
import time
from urllib.parse import urlencode

import pytest
from django.db import connection

from core import contract
from registry_mirror import gateway
from tests.conftest import token_client
from tests.factories import UserFactory, weather_csv
from training import ml
from training.models import TrainingJob
from training.services import dataset_create, training_job_execute
from training.uploads import upload_stage


def queued_job(client, csv_upload, model_name, **params) -> dict:
    # The job's message goes out on commit, which a test transaction never reaches: the job stays queued.
    query = urlencode({"model_name": model_name, "n_estimators": 5, **params})
    response = client.post(f"/train?{query}", {"file": csv_upload()})
    assert response.status_code == 202, response.json()
    return response.json()


def test_a_queued_job_is_cancelled_at_once_and_never_runs(api_client, csv_upload, model_name):
    # given
    job = queued_job(api_client, csv_upload, model_name)

    # when
    response = api_client.post(f"/train/{job['id']}/cancel")
    training_job_execute(job_id=job["id"])

    # then
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["registered_version"]) == ("cancelled", None)
    stored = TrainingJob.objects.get(pk=job["id"])
    assert (stored.status, stored.attempts, stored.mlflow_run_id) == ("cancelled", 0, "")
    assert stored.finished_at is not None
    assert api_client.get(f"/train/{job['id']}").json()["status"] == "cancelled"


def test_cancelling_a_finished_job_is_a_409(train, api_client):
    # given
    job = train()

    # when
    response = api_client.post(f"/train/{job['id']}/cancel")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "job_finished"
    assert TrainingJob.objects.get(pk=job["id"]).status == TrainingJob.Status.SUCCEEDED


def test_cancelling_a_job_that_is_registering_is_a_409(api_client, csv_upload, model_name):
    # given: a job whose execution reached the registering stage
    job = queued_job(api_client, csv_upload, model_name)
    TrainingJob.objects.filter(pk=job["id"]).update(
        status=TrainingJob.Status.RUNNING, stage=TrainingJob.Stage.REGISTERING
    )

    # when
    response = api_client.post(f"/train/{job['id']}/cancel")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "job_registering"
    assert TrainingJob.objects.get(pk=job["id"]).status == TrainingJob.Status.RUNNING


def test_another_trainers_job_is_a_404_and_a_maintainer_may_cancel_it(api_client, csv_upload, model_name, role_client):
    # given
    job = queued_job(api_client, csv_upload, model_name)
    other = token_client(UserFactory(role="trainer"))

    # when
    by_other = other.post(f"/train/{job['id']}/cancel")
    by_predictor = role_client("predictor").post(f"/train/{job['id']}/cancel")
    by_maintainer = role_client("maintainer").post(f"/train/{job['id']}/cancel")

    # then
    assert by_other.status_code == 404
    assert by_predictor.status_code == 403
    assert by_maintainer.status_code == 200 and by_maintainer.json()["status"] == "cancelled"


def test_a_cancel_is_a_post(api_client, csv_upload, model_name):
    # given
    job = queued_job(api_client, csv_upload, model_name)

    # when
    response = api_client.get(f"/train/{job['id']}/cancel")

    # then
    assert response.status_code == 405
    assert TrainingJob.objects.get(pk=job["id"]).status == TrainingJob.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_a_running_job_stops_at_its_next_checkpoint_and_registers_nothing(api_client, user, model_name, settings):
    # given: a stored job (not sent to a worker) with a forest big enough to take a while, run by a real
    # execution in another thread
    settings.MDS_PROGRESS_INTERVAL = 0
    raw = weather_csv(days=240)
    header = raw.split(b"\n", 1)[0].decode().split(",")
    staged = upload_stage(io.BytesIO(raw), max_bytes=len(raw))
    dataset = dataset_create(name="weather.csv", staged=staged, columns=header, uploaded_by=user)
    staged.close()
    # Stored as training_job_create stores it, without the message a worker would pick up.
    job_id = TrainingJob.objects.create(
        dataset=dataset,
        created_by=user,
        model_name=model_name,
        target_column="target",
        timestamp_column="timestamp",
        params=ml.TrainingParams(n_estimators=600, max_leaf_nodes=400).as_dict(),
    ).pk
    outcome: dict = {}

    def execute():
        try:
            outcome["job"] = training_job_execute(job_id=job_id)
        except BaseException as exc:  # shown by the assertion below
            outcome["error"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=execute)
    worker.start()
    deadline = time.monotonic() + 300
    while TrainingJob.objects.get(pk=job_id).progress <= 0.1 and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    fitting = TrainingJob.objects.get(pk=job_id)
    assert (fitting.status, fitting.stage) == ("running", "training"), fitting.error_message

    # when
    cancelled = api_client.post(f"/train/{job_id}/cancel")
    worker.join(timeout=300)

    # then
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert not worker.is_alive() and "error" not in outcome, outcome
    job = TrainingJob.objects.get(pk=job_id)
    assert (job.status, job.registered_version) == ("cancelled", None)
    # It stopped while fitting, before converting or registering.
    assert job.stage == TrainingJob.Stage.TRAINING and job.progress < 0.9
    assert gateway.client().search_model_versions(f"name = '{model_name}'") == []
    runs = gateway.client().search_runs(
        [gateway.experiment_id()], filter_string=f"tags.`{contract.JOB_TAG}` = '{job.key}'"
    )
    assert [(run.info.run_id, run.info.status) for run in runs] == [(job.mlflow_run_id, "KILLED")]
