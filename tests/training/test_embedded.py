"""Embedded mode's background training: `POST /train` answers at once, the job trains on the server's training
thread under its lease, `?wait=` still waits, and a job whose process died is taken up again as a process starts."""

import socket
import threading
import time
import uuid

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.files.storage import FileSystemStorage
from django.utils import timezone

from training.models import TrainingJob
from training.services import embedded, embedded_jobs_resume

from .test_recovery import dead_pid, versions_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def background(settings):
    settings.MDS_EMBEDDED_BACKGROUND_TRAINING = True
    assert embedded.background_training()
    yield
    # The thread's work ends before the test's database goes: a finished job still syncs the registry mirror.
    embedded.executor().submit(lambda: None).result(timeout=120)


@pytest.fixture
def busy_training_thread(background):
    """The training thread busy with something else until the test lets it go: jobs wait in its queue meanwhile."""
    gate = threading.Event()
    embedded.executor().submit(gate.wait, 60)
    yield gate
    gate.set()


def job_when(job_id: int, done, timeout: float = 120) -> TrainingJob:
    """The job once ``done(job)`` holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = TrainingJob.objects.get(pk=job_id)
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}/{job.stage} ({job.progress:.0%})"
        time.sleep(0.1)


def test_train_answers_202_at_once_and_the_job_trains_off_the_request(
    api_client, csv_upload, model_name, busy_training_thread
):
    # when: the training thread is busy with an earlier job
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})

    # then: the request does not wait for it
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued"
    job_id = response.json()["id"]
    assert TrainingJob.objects.get(pk=job_id).dispatched_at is not None

    # when: the thread is free
    busy_training_thread.set()

    # then: the job runs there, under a lease of this process, and registers its version
    running = job_when(job_id, lambda job: job.status != TrainingJob.Status.QUEUED)
    assert running.claimed_by.startswith(f"{socket.gethostname()}:")
    finished = job_when(job_id, lambda job: job.is_finished)
    assert finished.status == TrainingJob.Status.SUCCEEDED, finished.error_message
    assert versions_of(model_name) == [1]
    assert api_client.get(f"/train/{job_id}").json()["progress"] == 1.0


def test_wait_still_answers_with_the_finished_job(api_client, csv_upload, model_name, background):
    # when
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5&wait=120", {"file": csv_upload()})

    # then
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "success"
    assert response.json()["registered_version"] == 1


def test_a_job_whose_process_died_is_taken_up_again_as_a_process_starts(
    api_client, csv_upload, model_name, busy_training_thread
):
    # given: a job a process that is gone had claimed mid-training
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})
    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    TrainingJob.objects.filter(pk=job_id).update(
        status=TrainingJob.Status.RUNNING,
        stage=TrainingJob.Stage.TRAINING,
        attempts=1,
        claim=uuid.uuid4(),
        claimed_by=f"{socket.gethostname()}:{dead_pid()}",
        heartbeat_at=timezone.now(),
    )

    # when: a web process starts and runs the dispatcher's first pass
    report = embedded_jobs_resume()

    # then: the job is re-queued and handed to this process's training thread, where it finishes once
    assert report["requeued"] == [job_id]
    assert report["sent"] == [job_id]
    busy_training_thread.set()
    job = job_when(job_id, lambda job: job.is_finished)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error_message
    assert job.attempts == 2
    assert versions_of(model_name) == [1]


def test_a_queued_job_a_stopped_process_held_in_memory_is_handed_out_again(
    api_client, csv_upload, model_name, busy_training_thread
):
    # given: a job sent to a training thread a moment ago (it waits there: the process then stopped)
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})
    job_id = response.json()["id"]
    assert TrainingJob.objects.get(pk=job_id).status == TrainingJob.Status.QUEUED

    # when
    report = embedded_jobs_resume()

    # then: sent again at once, not after the resend delay; the second message finds the job done and does nothing
    assert report == {"requeued": [], "sent": [job_id], "unsent": []}
    busy_training_thread.set()
    job = job_when(job_id, lambda job: job.is_finished)
    assert job.status == TrainingJob.Status.SUCCEEDED and job.attempts == 1
    embedded.executor().submit(lambda: None).result(timeout=120)
    assert TrainingJob.objects.get(pk=job_id).attempts == 1
    assert versions_of(model_name) == [1]


def test_a_transient_fault_is_retried_on_the_training_thread_after_a_backoff(
    api_client, csv_upload, model_name, background, settings, monkeypatch
):
    # given: the dataset storage does not answer the job's first read (a fault injected at the storage seam)
    settings.MDS_RETRY_BACKOFF = 0.2
    real_open = FileSystemStorage._open
    reads = []

    def flaky(self, name, mode="rb"):
        reads.append(time.monotonic())
        if len(reads) == 1:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")
        return real_open(self, name, mode)

    monkeypatch.setattr(FileSystemStorage, "_open", flaky)

    # when
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})

    # then: released, tried again after the backoff, and finished
    assert response.status_code == 202, response.json()
    job = job_when(response.json()["id"], lambda job: job.is_finished)
    assert (job.status, job.attempts) == (TrainingJob.Status.SUCCEEDED, 2)
    assert reads[1] - reads[0] >= 0.2
    assert versions_of(model_name) == [1]
