"""Batch chunks through a dependency's outage (injected at the storage seam): a chunk given back for its retry
counts as sent, so the sweeper does not pile more messages on it; a retry the broker refused is the sweeper's."""

import pytest
from botocore.exceptions import EndpointConnectionError
from celery.exceptions import Reject

from core.errors import StorageUnavailable
from inference import tasks
from inference.batch import services
from inference.model_cache import model_cache
from inference.models import BatchChunk, BatchJob
from tests.factories import csv_bytes, weather_frame


@pytest.fixture
def planned(api_client, django_capture_on_commit_callbacks, train, model_name, settings) -> BatchChunk:
    """A job's one chunk, planned and not yet sent (its plan's message is left unsent)."""
    version = train()["registered_version"]
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client.generic(
            "POST", f"/batch?model_name={model_name}&version={version}", csv_bytes(weather_frame(20)), "text/csv"
        )
    assert response.status_code == 202, response.content
    services.batch_job_plan(job_id=response.json()["id"])
    settings.MDS_DISPATCH_GRACE = 0
    return BatchChunk.objects.get(job_id=response.json()["id"])


def storage_down(*args, **kwargs):
    raise EndpointConnectionError(endpoint_url="http://s3.invalid")


def test_a_chunk_given_back_for_its_retry_is_not_sent_again_by_the_sweeper(planned, monkeypatch):
    # given: the storage down under the chunk
    monkeypatch.setattr(services, "chunk_score", storage_down)

    # when: it runs
    with pytest.raises(StorageUnavailable):
        services.batch_chunk_execute(chunk_id=planned.pk, heartbeat=False)

    # then: queued again, its retry counting as sent: the sweeper leaves it to that retry
    planned.refresh_from_db()
    assert (planned.status, planned.claim, planned.attempts) == (BatchChunk.Status.QUEUED, None, 1)
    assert planned.dispatched_at is not None
    assert planned.job.status == BatchJob.Status.RUNNING
    assert planned.pk not in services.batch_jobs_sweep()["chunks"]


def test_a_retry_the_broker_refused_is_left_to_the_sweeper(planned, monkeypatch):
    # given: a chunk given back for its retry, which the broker cannot take
    monkeypatch.setattr(services, "chunk_score", storage_down)
    with pytest.raises(StorageUnavailable):
        services.batch_chunk_execute(chunk_id=planned.pk, heartbeat=False)
    task = tasks.batch_chunk_execute_task
    monkeypatch.setattr(tasks.BatchTask, "retry", lambda self, *a, **k: (_ for _ in ()).throw(Reject("down")))
    task.push_request(args=(planned.pk,))
    try:
        # when: the retry is refused
        with pytest.raises(Reject):
            task.retry(exc=StorageUnavailable("down"))
    finally:
        task.pop_request()

    # then: marked unsent, the sweeper sends it
    planned.refresh_from_db()
    assert planned.dispatched_at is None
    sent = []
    monkeypatch.setattr(services, "_dispatch", lambda kind, object_id: sent.append((kind, object_id)))
    assert planned.pk in services.batch_jobs_sweep()["chunks"]
    assert sent == [("chunk", planned.pk)]


def test_an_upload_is_planned_as_it_is_stored(
    api_client, django_capture_on_commit_callbacks, version, model_name, small_chunks
):
    # given: an upload of several chunks, its plan's message not yet run
    body = csv_bytes(weather_frame(300))
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client.generic("POST", f"/batch?model_name={model_name}&version={version}", body, "text/csv")
    assert response.status_code == 202, response.content
    job = BatchJob.objects.get(pk=response.json()["id"])
    assert job.status == BatchJob.Status.QUEUED
    chunks = list(job.chunks.order_by("index"))
    assert len(chunks) > 1 and sum(chunk.n_rows for chunk in chunks) == 300

    # when: the plan runs with the storage unreadable
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services.objects, "iter_blocks", storage_down)
        patch.setattr(services.objects, "read_range", storage_down)
        services.batch_job_plan(job_id=job.pk)

    # then: the job starts with the chunks planned at the upload: nothing was read back
    job.refresh_from_db()
    assert (job.status, job.rows_total, job.chunks_total) == (BatchJob.Status.RUNNING, 300, len(chunks))
    assert list(job.chunks.order_by("index").values_list("pk", flat=True)) == [chunk.pk for chunk in chunks]


def test_the_version_is_loaded_ahead_of_its_job(version, model_name):
    # given: a process that holds no version
    model_cache().clear()

    # when: the hint sent while an upload is stored runs there
    services.model_warm(model_name, version, "auto")

    # then: the version is loaded with its pickle, as a chunk of an `auto` job needs it
    (loaded,) = model_cache().loaded()
    assert (loaded.name, loaded.version) == (model_name, version)
    assert loaded.pickle.sklearn is not None
