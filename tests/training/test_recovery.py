"""Nothing lost, nothing stuck: the outbox and its dispatcher, the claim rules, the heartbeat, retried faults."""

import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from botocore.exceptions import EndpointConnectionError
from celery.exceptions import Reject
from django.core.files.storage import FileSystemStorage
from django.db import OperationalError
from django.utils import timezone

from core.errors import LeaseLost
from mds_project.celery import app as celery_app
from registry_mirror import gateway
from training import services
from training.models import TrainingJob
from training.services import Lease, training_jobs_dispatch
from training.services import execution as execution_module
from training.tasks import training_job_execute_task


def versions_of(name: str) -> list[int]:
    return sorted(int(v.version) for v in gateway.client().search_model_versions(f"name = '{name}'"))


@pytest.fixture
def queued_job(api_client, csv_upload, model_name):
    """POST /train whose after-commit send never runs (the test's transaction is never committed): a job that
    is stored but has no message, as when the broker is down."""

    def make(**fields) -> TrainingJob:
        response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})
        assert response.status_code == 202, response.json()
        TrainingJob.objects.filter(pk=response.json()["id"]).update(**fields)
        return TrainingJob.objects.get(pk=response.json()["id"])

    return make


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def running(**overrides) -> dict:
    """The fields of a job some execution claimed: by default on another machine, heartbeat fresh."""
    return {
        "status": TrainingJob.Status.RUNNING,
        "stage": TrainingJob.Stage.TRAINING,
        "attempts": 1,
        "claim": uuid.uuid4(),
        "claimed_by": "elsewhere:4242",
        "heartbeat_at": timezone.now(),
        **overrides,
    }


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --- Accepted means kept ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_accepted_while_the_broker_is_down_is_kept_and_sent_once_it_is_back(
    api_client, csv_upload, model_name, broker_down, settings
):
    # when: the broker refuses the message after the job was committed
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})

    # then: accepted and stored, waiting for the dispatcher
    assert response.status_code == 202, response.json()
    job = TrainingJob.objects.get(pk=response.json()["id"])
    assert (job.status, job.dispatched_at) == (TrainingJob.Status.QUEUED, None)
    assert job.dataset.file.read()

    # when: the broker is still down at the dispatcher's next round
    settings.MDS_DISPATCH_GRACE = 0
    report = training_jobs_dispatch()

    # then: it stays queued and unsent
    assert report["unsent"] == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.dispatched_at) == (TrainingJob.Status.QUEUED, None)

    # when: the broker is back (tasks run in-process here) and the dispatcher runs again
    celery_app.conf.task_always_eager = True
    report = training_jobs_dispatch()

    # then
    assert report["sent"] == [job.pk]
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.SUCCEEDED and job.attempts == 1
    assert versions_of(model_name) == [1]


def test_the_dispatcher_waits_for_the_requests_own_send_before_sending(queued_job, settings):
    # given: a job accepted a moment ago, whose request may still be sending it
    job = queued_job()
    settings.MDS_DISPATCH_GRACE = 60

    # when
    report = training_jobs_dispatch()

    # then
    assert report == {"requeued": [], "sent": [], "unsent": []}
    assert TrainingJob.objects.get(pk=job.pk).status == TrainingJob.Status.QUEUED


def test_the_dispatcher_resends_only_a_message_that_has_not_started_its_job_for_long(queued_job, settings):
    # given: one job sent a minute ago (its message may wait behind others), one sent ten minutes ago
    recent = queued_job(dispatched_at=ago(60))
    lost = queued_job(dispatched_at=ago(600))
    settings.MDS_DISPATCH_RESEND_AFTER = 300

    # when
    report = training_jobs_dispatch()

    # then
    assert report["sent"] == [lost.pk]
    assert TrainingJob.objects.get(pk=lost.pk).status == TrainingJob.Status.SUCCEEDED
    assert TrainingJob.objects.get(pk=recent.pk).status == TrainingJob.Status.QUEUED


# --- Running jobs have a heartbeat --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claimant",
    [
        pytest.param(lambda: running(heartbeat_at=ago(120)), id="heartbeat-stale"),
        pytest.param(lambda: running(claimed_by=f"{socket.gethostname()}:{dead_pid()}"), id="process-gone"),
        pytest.param(lambda: running(claimed_by=f"{socket.gethostname()}:{os.getpid()}"), id="this-process-idle"),
        pytest.param(lambda: running(claim=None), id="no-lease"),
    ],
)
def test_the_dispatcher_requeues_a_job_whose_execution_is_gone_and_it_finishes(
    queued_job, model_name, settings, claimant
):
    # given
    job = queued_job(**claimant())
    settings.MDS_HEARTBEAT_STALE_AFTER = 60

    # when
    report = training_jobs_dispatch()

    # then: re-queued, sent, claimed again (attempt 2) and finished with one version
    assert report["requeued"] == report["sent"] == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.registered_version) == (TrainingJob.Status.SUCCEEDED, 2, 1)
    assert versions_of(model_name) == [1]


def test_a_job_a_live_execution_runs_is_left_alone_by_the_dispatcher_and_by_a_duplicate_message(
    queued_job, model_name
):
    # given: an execution elsewhere, beating
    job = queued_job(**running())

    # when
    report = training_jobs_dispatch()
    training_job_execute_task.delay(job.pk)

    # then
    assert report["requeued"] == []
    after = TrainingJob.objects.get(pk=job.pk)
    assert (after.status, after.attempts, after.claim) == (TrainingJob.Status.RUNNING, 1, job.claim)
    assert versions_of(model_name) == []


@pytest.mark.parametrize("stale", [False, True])
def test_a_claim_takes_a_running_job_only_from_a_dead_execution(queued_job, model_name, stale):
    # given
    job = queued_job(**running(heartbeat_at=ago(300 if stale else 1)))

    # when: a redelivered message arrives
    training_job_execute_task.delay(job.pk)

    # then
    job.refresh_from_db()
    expected = (TrainingJob.Status.SUCCEEDED, 2) if stale else (TrainingJob.Status.RUNNING, 1)
    assert (job.status, job.attempts) == expected
    assert versions_of(model_name) == ([1] if stale else [])


def test_the_attempt_cap_holds_for_a_requeued_job(queued_job, model_name, settings):
    # given: a job whose executions kept dying
    job = queued_job(**running(heartbeat_at=ago(300), attempts=settings.MDS_TRAIN_MAX_ATTEMPTS))

    # when
    training_jobs_dispatch()

    # then
    job.refresh_from_db()
    assert (job.status, job.error_code) == (TrainingJob.Status.FAILED, "too_many_attempts")
    assert versions_of(model_name) == []


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_while_the_lease_holds_and_notices_a_takeover(api_client, csv_upload, model_name):
    # given: a job claimed by this execution
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload()})
    TrainingJob.objects.filter(pk=response.json()["id"]).update(**running(heartbeat_at=ago(30)))
    job = TrainingJob.objects.get(pk=response.json()["id"])

    with Lease(job, heartbeat_interval=0.05) as lease:
        # when: time passes (the bound only ends a wait for a heartbeat that never comes; a loaded machine may
        # hold the beating thread back for seconds)
        deadline = time.monotonic() + 60
        while TrainingJob.objects.get(pk=job.pk).heartbeat_at < ago(5) and time.monotonic() < deadline:
            time.sleep(0.05)

        # then: the heartbeat is fresh again
        assert TrainingJob.objects.get(pk=job.pk).heartbeat_at > ago(5)

        # when: another execution claims the job
        TrainingJob.objects.filter(pk=job.pk).update(claim=uuid.uuid4())
        deadline = time.monotonic() + 60
        while not lease.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)

        # then: this one stops at its next step without touching the job
        with pytest.raises(LeaseLost):
            lease.stage(TrainingJob.Stage.REGISTERING)
    assert TrainingJob.objects.get(pk=job.pk).stage == TrainingJob.Stage.TRAINING


def test_an_execution_that_lost_its_lease_registers_nothing(queued_job, model_name, monkeypatch):
    # given: while this execution trains, another one takes the job over
    job = queued_job()
    real_train = execution_module.ml.train

    def train_then_lose_the_job(*args, **kwargs):
        result = real_train(*args, **kwargs)
        TrainingJob.objects.filter(pk=job.pk).update(claim=uuid.uuid4(), claimed_by="elsewhere:1")
        return result

    monkeypatch.setattr(execution_module.ml, "train", train_then_lose_the_job)

    # when
    training_job_execute_task.delay(job.pk)

    # then: left running, for the execution that holds it
    job.refresh_from_db()
    assert (job.status, job.claimed_by) == (TrainingJob.Status.RUNNING, "elsewhere:1")
    assert versions_of(model_name) == []


# --- Transient faults are retried ---------------------------------------------------------------------------------


def test_an_unreachable_storage_while_loading_the_dataset_is_retried(train, model_name, monkeypatch):
    # given: S3 does not answer the first read (a fault injected at the storage seam)
    real_open = FileSystemStorage._open
    calls = []

    def flaky(self, name, mode="rb"):
        calls.append(name)
        if len(calls) == 1:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")
        return real_open(self, name, mode)

    monkeypatch.setattr(FileSystemStorage, "_open", flaky)

    # when
    job = train()

    # then
    assert (job["status"], job["attempts"]) == ("success", 2)
    assert versions_of(model_name) == [1]


def test_a_retry_the_broker_cannot_take_leaves_the_job_to_the_dispatcher(queued_job, monkeypatch, broker_down):
    # given: a worker's execution (not eager) whose dataset read meets S3 down, and a broker that refuses the retry
    job = queued_job()

    def unreachable(self, name, mode="rb"):
        raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    monkeypatch.setattr(FileSystemStorage, "_open", unreachable)
    task = training_job_execute_task
    task.push_request(args=[job.pk], id=job.celery_task_id, retries=0, is_eager=False, called_directly=False)

    # when
    try:
        with pytest.raises(Reject):
            task.run(job.pk)
    finally:
        task.pop_request()

    # then: back in the queue with no message on its way, for the dispatcher to send
    job.refresh_from_db()
    assert (job.status, job.attempts, job.claim, job.dispatched_at) == (TrainingJob.Status.QUEUED, 1, None, None)


def test_a_database_error_recording_the_outcome_is_retried_and_reuses_the_version(train, model_name, monkeypatch):
    # given: the database drops the connection when the first attempt records its version
    real_succeed = execution_module._training_job_succeed
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["job_id"])
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_succeed(**kwargs)

    monkeypatch.setattr(execution_module, "_training_job_succeed", flaky)

    # when
    job = train()

    # then: the second attempt found the version the first registered
    assert (job["status"], job["attempts"], job["registered_version"]) == ("success", 2, 1)
    assert versions_of(model_name) == [1]


def test_the_failure_handler_survives_the_database_being_away(queued_job, monkeypatch, settings):
    # given: a job whose execution died, and a database that refuses the failure handler's write
    job = queued_job(**running(heartbeat_at=ago(120)))

    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "training_job_fail", unreachable)

    # when
    training_job_execute_task.on_failure(RuntimeError("boom"), job.celery_task_id, (job.pk,), {}, None)

    # then: nothing raised, and the job is not stuck: the dispatcher takes it back
    monkeypatch.undo()
    assert training_jobs_dispatch()["requeued"] == [job.pk]
