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


def test_an_upload_naming_its_version_sends_the_load_hint_before_its_body_is_read(
    api_client, batch, version, model_name, settings, monkeypatch
):
    # given: embedded mode's background thread, whose work is recorded (not run), and when the body is read
    from inference.batch import apis, embedded

    settings.MDS_EMBEDDED_BACKGROUND_TRAINING = True
    events: list = []
    monkeypatch.setattr(embedded, "submit", lambda fn, *args: events.append((fn.__name__, args)))
    parse = apis.RawBodyParser.parse

    def parse_recorded(self, stream, media_type=None, parser_context=None):
        events.append(("body read", ()))
        return parse(self, stream, media_type, parser_context)

    monkeypatch.setattr(apis.RawBodyParser, "parse", parse_recorded)

    # when
    accepted = batch(csv_bytes(weather_frame(30, seed=9)), version=version)
    unknown = batch(csv_bytes(weather_frame(30, seed=9)), version=version + 1)

    # then: the known version's load was asked for first, then its body read; an unknown one reads the body and
    # is refused as usual, with no hint
    assert accepted.status_code == 202, accepted.json()
    assert events[:2] == [("model_warm", (model_name, version, "auto")), ("body read", ())]
    assert unknown.status_code == 404, unknown.json()
    assert ("model_warm", (model_name, version + 1, "auto")) not in events
