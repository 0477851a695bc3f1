"""Embedded mode's batch dispatcher: as a web process starts, its first pass takes up the batch jobs an earlier
process held in memory (its batch thread's messages) or was scoring when it stopped."""

import socket
import uuid

from django.utils import timezone

from inference.batch.embedded import batch_jobs_resume
from inference.batch.services import batch_job_plan
from inference.models import BatchChunk, BatchJob
from tests.factories import csv_bytes, weather_frame
from tests.training.test_recovery import dead_pid

from .test_apis import rows_of


def test_the_first_pass_takes_up_the_jobs_a_stopped_process_held(
    api_client, train, model_name, settings, django_capture_on_commit_callbacks
):
    # given: two accepted jobs whose messages were lost with the process that held them
    settings.MDS_BATCH_CHUNK_BYTES = 2000
    version = train()["registered_version"]
    frame = weather_frame(120, seed=8)
    frame.insert(0, "id", range(len(frame)))
    url = f"/batch?model_name={model_name}&version={version}&passthrough=id"
    running, queued = (
        api_client.generic("POST", url, csv_bytes(frame), content_type="text/csv").json()["id"] for _ in range(2)
    )
    # the first was planned, its chunks handed to the stopped process's thread, its chunk 0 mid-scoring there
    batch_job_plan(job_id=running)
    chunks = list(BatchChunk.objects.filter(job_id=running).order_by("index").values_list("pk", flat=True))
    assert len(chunks) > 2
    BatchChunk.objects.filter(job_id=running).update(dispatched_at=timezone.now())
    BatchChunk.objects.filter(pk=chunks[0]).update(
        status=BatchChunk.Status.RUNNING,
        claim=uuid.uuid4(),
        claimed_by=f"{socket.gethostname()}:{dead_pid()}",
        heartbeat_at=timezone.now(),
        attempts=1,
    )

    # when: a new process runs the dispatcher's first pass
    with django_capture_on_commit_callbacks(execute=True):
        report = batch_jobs_resume()

    # then: the lost chunk is re-queued, every message is sent again at once, and both jobs finish whole
    assert report["requeued"] == [chunks[0]]
    assert report["chunks"] == chunks
    assert report["plans"] == [queued]
    for job_id in (running, queued):
        job = BatchJob.objects.get(pk=job_id)
        assert job.status == BatchJob.Status.SUCCEEDED, job.error_message
        assert (job.rows_total, job.rows_done) == (120, 120)
        rows = rows_of(b"".join(api_client.get(f"/batch/{job_id}/result").streaming_content))
        assert [int(row["id"]) for row in rows] == list(range(120))
    assert BatchChunk.objects.get(pk=chunks[0]).attempts == 2
