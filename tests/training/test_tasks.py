"""The training task is idempotent: retries and redeliveries never register a second version."""

from celery.signals import task_retry

from core import contract
from core.errors import MlflowUnavailable
from registry_mirror import gateway
from training.models import TrainingJob
from training.tasks import training_job_execute_task


def versions_of(name: str) -> list[int]:
    return sorted(int(v.version) for v in gateway.client().search_model_versions(f"name = '{name}'"))


def runs_of(job: TrainingJob):
    return gateway.client().search_runs(
        [gateway.experiment_id()], filter_string=f"tags.`{contract.JOB_TAG}` = '{job.key}'"
    )


def test_a_redelivered_message_for_a_finished_job_changes_nothing(train, model_name):
    # given
    job = TrainingJob.objects.get(pk=train()["id"])

    # when
    training_job_execute_task.delay(job.pk)

    # then
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.SUCCEEDED and job.attempts == 1
    assert versions_of(model_name) == [1]


def test_a_retry_after_registration_reuses_the_registered_version(train, model_name):
    # given: the worker died after MLflow registered the version but before the job was saved
    job = TrainingJob.objects.get(pk=train()["id"])
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingJob.Status.RUNNING, registered_version=None)

    # when
    training_job_execute_task.delay(job.pk)

    # then
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.SUCCEEDED and job.registered_version == 1 and job.attempts == 2
    assert versions_of(model_name) == [1]
    assert [run.info.status for run in runs_of(job)] == ["FINISHED"]


def test_a_run_left_running_by_a_killed_attempt_is_closed_and_replaced(
    api_client, csv_upload, model_name, django_capture_on_commit_callbacks
):
    # given: a queued job whose first attempt died mid-way and left its MLflow run RUNNING
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})
    job = TrainingJob.objects.get(pk=response.json()["id"])
    stale = gateway.client().create_run(gateway.experiment_id(), tags={contract.JOB_TAG: str(job.key)})

    # when
    training_job_execute_task.delay(job.pk)

    # then
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.SUCCEEDED
    statuses = {run.info.run_id: run.info.status for run in runs_of(job)}
    assert statuses[stale.info.run_id] == "FAILED"
    assert statuses[job.mlflow_run_id] == "FINISHED" and len(statuses) == 2
    assert versions_of(model_name) == [1]


def test_a_failure_while_logging_fails_the_job_and_the_run(train, monkeypatch, model_name):
    # given: writing the model directory breaks (a fault injected at the MLflow seam)
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(gateway.register, "_save_model_dir", broken)

    # when
    job = train()

    # then
    assert job["status"] == "failed" and job["error"] == {
        "code": "internal_error",
        "message": "OSError: disk full",
        "extra": {},
    }
    assert job["registered_version"] is None and job["trained_models"] == []
    [run] = runs_of(TrainingJob.objects.get(pk=job["id"]))
    assert run.info.status == "FAILED"
    assert versions_of(model_name) == []


def test_mlflow_unavailable_is_retried_and_then_succeeds(train, monkeypatch, model_name):
    # given: MLflow is unreachable for the first attempt only
    real_register = gateway.model_version_register
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["job_key"])
        if len(calls) == 1:
            raise MlflowUnavailable("MLflow is unreachable: connection refused")
        return real_register(**kwargs)

    monkeypatch.setattr(gateway, "model_version_register", flaky)

    # when
    job = train()

    # then
    assert job["status"] == "success" and job["attempts"] == 2
    assert len(calls) == 2 and calls[0] == calls[1]
    assert versions_of(model_name) == [1]


def test_mlflow_down_for_good_fails_the_job_after_the_retries(train, monkeypatch, model_name, settings):
    # given: MLflow down, and the delay of every retry as the task schedules it (eager runs it at once)
    def down(**kwargs):
        raise MlflowUnavailable("MLflow is unreachable: connection refused")

    monkeypatch.setattr(gateway, "model_version_register", down)
    countdowns = []

    def scheduled(sender=None, reason=None, **kwargs):
        countdowns.append(reason.when)

    task_retry.connect(scheduled, weak=False)

    # when
    try:
        job = train()
    finally:
        task_retry.disconnect(scheduled)

    # then
    assert job["status"] == "failed"
    assert job["error"]["code"] == "mlflow_unavailable"
    assert job["attempts"] == settings.MDS_TRAIN_RETRIES + 1 < settings.MDS_TRAIN_MAX_ATTEMPTS
    # MDS_RETRY_BACKOFF doubling, capped at MDS_RETRY_BACKOFF_MAX, no jitter: 5, 10, 20, 40, 60, 60... by default
    assert countdowns == [
        min(settings.MDS_RETRY_BACKOFF_MAX, settings.MDS_RETRY_BACKOFF * 2**retry)
        for retry in range(settings.MDS_TRAIN_RETRIES)
    ]


def test_failing_a_finished_job_keeps_its_outcome(train):
    # given: a late on_failure call for a job that already succeeded
    from training.services import training_job_fail

    job = TrainingJob.objects.get(pk=train()["id"])

    # when
    after = training_job_fail(job_id=job.pk, code="late", message="late failure")

    # then
    assert after.status == TrainingJob.Status.SUCCEEDED and after.error_code == ""
    assert after.registered_version == job.registered_version


def test_a_job_started_too_often_fails_instead_of_running_again(api_client, csv_upload, model_name, settings):
    # given: a queued job whose worker died during every earlier start
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=5", {"file": csv_upload()})
    TrainingJob.objects.filter(pk=response.json()["id"]).update(attempts=settings.MDS_TRAIN_MAX_ATTEMPTS)

    # when
    training_job_execute_task.delay(response.json()["id"])

    # then
    job = TrainingJob.objects.get(pk=response.json()["id"])
    assert job.status == TrainingJob.Status.FAILED and job.error_code == "too_many_attempts"
    assert versions_of(model_name) == []
