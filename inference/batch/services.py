"""Batch jobs: accept a file, plan its chunks, score them under leases, join the parts, sweep what was lost.

The job and chunk rows are the outbox and the state machine, as for training jobs: a message is only a notice.
``batch_job_create`` stores the input and the queued job, then sends the planning message once committed; an
upload's chunks are split from its local copy as it is stored and saved with the job. The plan (a worker) splits a
stored input into chunks (an upload's are already there), starts the job and sends one message per chunk; any
worker claims a chunk (a fresh
``claim`` id, ``claimed_by`` host:pid, a heartbeat), scores it, stores its part and marks it done under its claim.
The chunk that completes the job sends the join. A worker killed mid-chunk leaves a lease whose process is gone or
whose heartbeat goes stale: its redelivered message (acks late) or the sweeper (beat, ``batch_jobs_sweep``) gives
the chunk to another execution, which redoes it whole and overwrites its part, so no row is lost or doubled.
"""

import contextlib
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from core import faults
from core.contract import VersionRef
from core.errors import Conflict, JobCancelled, LeaseLost, NotFound
from core.leases import process_gone, this_process
from core.tabular import TableError, require_columns

from ..model_cache import model_cache
from ..models import BatchChunk, BatchJob
from ..services import loaded_version
from . import embedded, objects
from .chunks import chunk_score, part_name
from .join import errors_join, result_join
from .sources import (
    HEADER_MAX_BYTES,
    Chunk,
    RangeFile,
    csv_header,
    csv_plan,
    local_plan,
    parquet_chunks,
    parquet_columns,
)

logger = logging.getLogger(__name__)

_executing: set[int] = set()
_executing_lock = threading.Lock()


@dataclass
class BatchInput:
    """Where the rows are: a local file to store for the job (an upload), or an object already stored."""

    path: str | None = None
    stored_name: str | None = None
    file_name: str = ""
    content_type: str = ""
    input_format: str | None = None
    # An upload already on its way to storage as it arrived (S3), under ``batch/<key>/``.
    key: uuid.UUID | None = None
    followed: objects.FollowedUpload | None = None


def input_format_of(source: BatchInput, head: bytes) -> str:
    if source.input_format:
        return source.input_format
    name = (source.file_name or source.stored_name or "").lower()
    if name.endswith((".parquet", ".pq")) or "parquet" in source.content_type or head[:4] == b"PAR1":
        return BatchJob.Format.PARQUET
    return BatchJob.Format.CSV


def batch_job_create(
    *,
    user,
    model_name: str,
    version: VersionRef,
    model_format: str = "auto",
    source: BatchInput,
    output_format: str = "csv",
    interval: float | None = None,
    explain: bool = False,
    passthrough: list[str] | None = None,
    on_error: str = "fail",
    warm_sent: bool = False,
) -> BatchJob:
    """Check the request against the input's header (never reading its rows), store the input if it was uploaded,
    and queue the job; its planning message is sent once committed.

    Raises:
        NotFound: no such model, version or alias (or stored object).
        TableError: the header is not CSV (or the file not Parquet), or a ``passthrough`` column is not in it.
        StorageUnavailable, DatabaseUnavailable: nothing is kept; try again.
    """
    number = model_cache().resolve(model_name, version)
    key = source.key or uuid.uuid4()
    stored: str | None = None
    try:
        if source.path is not None:
            with open(source.path, "rb") as local:
                head = local.read(HEADER_MAX_BYTES)
        else:
            assert source.stored_name is not None
            if not objects.exists(source.stored_name):
                raise NotFound(f"No stored object {source.stored_name!r}.", extra={"object": source.stored_name})
            head = objects.read_range(source.stored_name, 0, min(HEADER_MAX_BYTES, objects.size(source.stored_name)))
        input_format = input_format_of(source, head)
        header_text = ""
        if input_format == BatchJob.Format.PARQUET:
            columns = parquet_columns(source.path if source.path is not None else RangeFile(source.stored_name or ""))
        else:
            header_text, columns, _ = csv_header(head)
        require_columns(columns, passthrough or [])
        input_name = source.stored_name
        plan: list[Chunk] = []
        if source.path is not None:
            input_name = f"batch/{key.hex}/input.{input_format}"
            if not warm_sent:
                _model_warm(model_name, number, model_format)
            if source.followed is not None:
                input_name = source.followed.name
            # From here, a failure removes what was stored (deleting what is not there is no error).
            stored = input_name
            if source.followed is not None:
                plan = _plan_while_followed(source.path, source.followed, input_format)
            else:
                plan = _store_and_plan(source.path, input_name, input_format)
        assert input_name is not None
        size = objects.size(input_name)
        with transaction.atomic():
            job = BatchJob(
                key=key,
                model_name=model_name,
                model_version=number,
                model_format=model_format,
                interval=interval,
                explain=explain,
                passthrough=list(passthrough or []),
                on_error=on_error,
                input_name=input_name,
                input_format=input_format,
                input_bytes=size,
                input_columns=columns,
                input_header=header_text,
                input_owned=source.path is not None,
                output_format=output_format,
                created_by=user if user is not None and user.is_authenticated else None,
            )
            job.full_clean()
            job.save()
            _chunks_create(job, plan)
            transaction.on_commit(lambda: _dispatch("plan", job.pk))
        return job
    except Exception as exc:
        if stored is not None:
            with contextlib.suppress(Exception):  # storage down: the object stays, as an orphan
                objects.delete(stored)
        unavailable = faults.unavailable(exc)
        if unavailable is None or unavailable is exc:
            raise
        raise unavailable from exc


def _store_and_plan(path: str, name: str, input_format: str) -> list[Chunk]:
    """Store the uploaded file as ``name`` and, meanwhile, split it into chunks from the local copy: the plan
    costs no second read of the input from storage, and its scan hides behind the upload to storage."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-store") as pool:
        stored = pool.submit(objects.put_file, name, path)
        try:
            plan = local_plan(path, input_format=input_format, chunk_bytes=settings.MDS_BATCH_CHUNK_BYTES)
        finally:
            # The upload's outcome (a storage fault included) comes first, whatever the scan did.
            stored.result()
    return plan


def _plan_while_followed(path: str, followed: objects.FollowedUpload, input_format: str) -> list[Chunk]:
    """Split the upload from its local copy while its last parts reach storage, then complete the object."""
    try:
        plan = local_plan(path, input_format=input_format, chunk_bytes=settings.MDS_BATCH_CHUNK_BYTES)
    finally:
        # The upload's outcome (a storage fault included) comes first, whatever the scan did.
        followed.complete()
    return plan


def _chunks_create(job: BatchJob, plan: list[Chunk]) -> None:
    BatchChunk.objects.bulk_create(
        BatchChunk(job=job, index=i, start=c.start, end=c.end, first_row=c.first_row, n_rows=c.n_rows)
        for i, c in enumerate(plan)
    )


def batch_model_warm_early(*, model_name: str, version: VersionRef, model_format: str) -> bool:
    """Send the load hint for an upload's version as its request starts, before its body arrives, so the load
    overlaps the whole upload; whether it was sent. An unknown version sends nothing: the request is refused later,
    once its body is read, with the usual error."""
    try:
        number = model_cache().resolve(model_name, version)
    except Exception:  # NotFound, a registry down...: batch_job_create reports it
        return False
    _model_warm(model_name, number, model_format)
    return True


def _model_warm(model_name: str, number: int, model_format: str) -> None:
    """Ask a worker to load the version while the upload is stored, so the first chunk does not wait for it. A
    hint: a worker that never scores this job only holds the version in its cache; a broker down loses it."""
    if settings.CELERY_TASK_ALWAYS_EAGER and not embedded.background():
        return  # tasks run inline: loading here would only delay the answer
    if embedded.background():
        embedded.submit(model_warm, model_name, number, model_format)
        return
    from .. import tasks

    try:
        tasks.batch_model_warm_task.apply_async(args=(model_name, number, model_format))
    except Exception as exc:  # whatever the broker client raises: the first chunk loads the version instead
        logger.warning("Could not send the load of %s version %s to the broker: %s", model_name, number, exc)


def model_warm(model_name: str, number: int, model_format: str) -> None:
    """Load the version into this process's cache (and its pickle, which chunks of ``auto`` jobs wait for), and
    its training profile, which the first chunk's drift reads."""
    from ..monitoring import version_profile

    try:
        loaded = loaded_version(model_name=model_name, version=VersionRef(number=number))
        if model_format == "auto":
            loaded.pickle.usable()
        version_profile(model_name=model_name, version=number)
    except Exception as exc:  # the chunks load it again and report what fails
        logger.warning("Could not load %s version %s ahead of its batch job: %s", model_name, number, exc)


def batch_job_cancel(*, job: BatchJob) -> BatchJob:
    """Cancel a queued or running job: its chunks stop at their next piece. ``Conflict`` once it has ended."""
    updated = BatchJob.objects.filter(pk=job.pk, status__in=(BatchJob.Status.QUEUED, BatchJob.Status.RUNNING)).update(
        status=BatchJob.Status.CANCELLED, finished_at=timezone.now(), updated_at=timezone.now()
    )
    job.refresh_from_db()
    if not updated:
        raise Conflict(f"Batch job {job.pk} already ended ({job.status}).", code="job_finished")
    return job


# --- Worker side -------------------------------------------------------------------------------------------------


def batch_job_plan(*, job_id: int) -> None:
    """Split a queued job's input into chunks, store them and send one message per chunk (idempotent: a job
    already planned is left alone)."""
    job = BatchJob.objects.get(pk=job_id)
    if job.status != BatchJob.Status.QUEUED:
        return
    if job.chunks.exists():
        plan: list[Chunk] = []  # planned as the upload was stored
    else:
        plan = _stored_plan(job)
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        if job.status != BatchJob.Status.QUEUED:
            return
        if not job.chunks.exists():
            _chunks_create(job, plan)
        chunks = list(job.chunks.order_by("index").values_list("pk", "n_rows"))
        now = timezone.now()
        BatchJob.objects.filter(pk=job_id).update(
            status=BatchJob.Status.RUNNING,
            rows_total=sum(n_rows for _, n_rows in chunks),
            chunks_total=len(chunks),
            started_at=now,
            updated_at=now,
        )
        chunk_ids = [chunk_id for chunk_id, _ in chunks]
        transaction.on_commit(lambda: [_dispatch("chunk", chunk_id) for chunk_id in chunk_ids])
    logger.info("Batch job %s: %s chunks", job_id, len(chunks))


def _stored_plan(job: BatchJob) -> list[Chunk]:
    """The chunks of a job's stored input (a named object or dataset), read from storage."""
    try:
        chunk_bytes = settings.MDS_BATCH_CHUNK_BYTES
        if job.input_format == BatchJob.Format.PARQUET:
            return parquet_chunks(RangeFile(job.input_name), chunk_bytes=chunk_bytes)
        _, _, header_end = csv_header(objects.read_range(job.input_name, 0, min(HEADER_MAX_BYTES, job.input_bytes)))
        return csv_plan(job.input_name, header_end=header_end, chunk_bytes=chunk_bytes)
    except Exception as exc:
        unavailable = faults.unavailable(exc)
        if unavailable is not None:
            raise unavailable from exc
        raise


def chunk_lease_dead_reason(chunk: BatchChunk, now=None) -> str | None:
    if chunk.claim is None or chunk.heartbeat_at is None:
        return "it has no lease"
    age = ((now or timezone.now()) - chunk.heartbeat_at).total_seconds()
    if age > settings.MDS_HEARTBEAT_STALE_AFTER:
        return f"its heartbeat is {age:.0f} s old"
    if chunk.claimed_by == this_process():
        with _executing_lock:
            return None if chunk.pk in _executing else "this process no longer runs it"
    return process_gone(chunk.claimed_by)


def batch_chunk_claim(*, chunk_id: int) -> BatchChunk | None:
    """Take the chunk if it is queued, or running under a lease whose execution is gone; ``None`` otherwise."""
    chunk = BatchChunk.objects.select_related("job").get(pk=chunk_id)
    if chunk.job.status != BatchJob.Status.RUNNING or chunk.status == BatchChunk.Status.DONE:
        return None
    condition = Q(status=BatchChunk.Status.QUEUED)
    if chunk.status == BatchChunk.Status.RUNNING:
        reason = chunk_lease_dead_reason(chunk)
        if reason is None:
            return None
        logger.warning(
            "Taking over batch job %s chunk %s from %s: %s", chunk.job_id, chunk.index, chunk.claimed_by, reason
        )
        condition = Q(status=BatchChunk.Status.RUNNING, claim=chunk.claim)
    claim = uuid.uuid4()
    taken = BatchChunk.objects.filter(condition, pk=chunk_id).update(
        status=BatchChunk.Status.RUNNING,
        claim=claim,
        claimed_by=this_process(),
        heartbeat_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    if not taken:
        return None
    chunk.refresh_from_db()
    return chunk


class _Heartbeat:
    """Refreshes the chunk's heartbeat while it is scored; ``lost`` once the claim is no longer this one's."""

    def __init__(self, chunk: BatchChunk, interval: float | None):
        self.chunk, self.interval = chunk, interval
        self.lost = threading.Event()
        self._stop = threading.Event()

    def __enter__(self) -> "_Heartbeat":
        with _executing_lock:
            _executing.add(self.chunk.pk)
        if self.interval:
            threading.Thread(target=self._beat, name=f"batch-heartbeat-{self.chunk.pk}", daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        with _executing_lock:
            _executing.discard(self.chunk.pk)

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(self.interval):
                try:
                    connection.close_if_unusable_or_obsolete()
                    if not BatchChunk.objects.filter(pk=self.chunk.pk, claim=self.chunk.claim).update(
                        heartbeat_at=timezone.now()
                    ):
                        self.lost.set()
                        return
                except DatabaseError as exc:
                    logger.warning("Heartbeat of batch chunk %s failed: %s", self.chunk.pk, exc)
        finally:
            connection.close()


def batch_chunk_execute(*, chunk_id: int, heartbeat: bool = True) -> None:
    """Claim and score one chunk, store its part, and mark it done under the claim; the chunk that completes its
    job sends the join. A data error (``on_error=fail``) fails the job; a dependency down releases the chunk and
    raises ``Unavailable`` (the task retries it)."""
    chunk = batch_chunk_claim(chunk_id=chunk_id)
    if chunk is None:
        return
    job = chunk.job
    with _Heartbeat(chunk, settings.MDS_HEARTBEAT_INTERVAL if heartbeat else None) as beat:

        def checkpoint() -> None:
            if beat.lost.is_set():
                raise LeaseLost(f"batch chunk {chunk.pk} was taken over")
            if BatchJob.objects.filter(pk=job.pk).values_list("status", flat=True).first() != BatchJob.Status.RUNNING:
                raise JobCancelled(f"batch job {job.pk} is no longer running")

        try:
            loaded = loaded_version(model_name=job.model_name, version=VersionRef(number=job.model_version))
            outcome = chunk_score(job=job, chunk=chunk, loaded=loaded, checkpoint=checkpoint)
        except LeaseLost:
            return
        except TableError as exc:
            batch_job_fail(job_id=job.pk, code=exc.code, message=exc.message, extra=exc.extra)
            return
        except Exception as exc:
            unavailable = faults.unavailable(exc)
            if unavailable is not None:
                _chunk_release(chunk)
                if unavailable is exc:
                    raise
                raise unavailable from exc
            # A refused version (not found, untrusted, no intervals) or a bug: the job fails rather than loop.
            batch_job_fail(job_id=job.pk, code=getattr(exc, "code", "internal_error"), message=str(exc), extra={})
            if isinstance(exc, NotFound | Conflict) or getattr(exc, "code", None):
                return
            raise
    drift = _drift(job, outcome) if outcome.sample is not None else None
    with transaction.atomic():
        done = BatchChunk.objects.filter(pk=chunk.pk, claim=chunk.claim, status=BatchChunk.Status.RUNNING).update(
            status=BatchChunk.Status.DONE, rows_done=outcome.rows_done, rows_skipped=outcome.rows_skipped
        )
        if not done:
            return
        fields: dict[str, Any] = {
            "rows_done": F("rows_done") + outcome.rows_done,
            "rows_skipped": F("rows_skipped") + outcome.rows_skipped,
            "chunks_done": F("chunks_done") + 1,
            "updated_at": timezone.now(),
        }
        if drift is not None:
            fields["drift"] = drift
        BatchJob.objects.filter(pk=job.pk).update(**fields)
        job.refresh_from_db()
        if job.status == BatchJob.Status.RUNNING and job.chunks_done >= job.chunks_total:
            transaction.on_commit(lambda: _dispatch("join", job.pk))


def _chunk_release(chunk: BatchChunk) -> None:
    # Its retry is on its way, so it counts as sent (as a training job's release): marked unsent, the sweeper sent
    # it again every MDS_DISPATCH_INTERVAL, and an outage piled up one retry chain per chunk per sweep.
    with contextlib.suppress(DatabaseError):
        BatchChunk.objects.filter(pk=chunk.pk, claim=chunk.claim).update(
            status=BatchChunk.Status.QUEUED, claim=None, claimed_by="", heartbeat_at=None, dispatched_at=timezone.now()
        )


def batch_chunk_undispatched(*, chunk_id: int) -> None:
    """Record that the chunk's retry did not reach the broker, for the sweeper to send it once it is back."""
    _mark("chunk", chunk_id, None)


def batch_job_join(*, job_id: int) -> None:
    """Join a job's parts into its result (and its errors file), mark it a success and remove the parts."""
    job = BatchJob.objects.get(pk=job_id)
    if job.status != BatchJob.Status.RUNNING or job.chunks_done < job.chunks_total:
        return
    indexes = list(job.chunks.order_by("index").values_list("index", flat=True))
    try:
        result = result_join(job, [part_name(job, index) for index in indexes])
        errors = ""
        if job.rows_skipped:
            with_errors = job.chunks.filter(rows_skipped__gt=0).order_by("index").values_list("index", flat=True)
            errors = errors_join(job, [part_name(job, index, "errors") for index in with_errors])
    except Exception as exc:
        unavailable = faults.unavailable(exc)
        if unavailable is not None:
            raise unavailable from exc
        raise
    now = timezone.now()
    BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.RUNNING).update(
        status=BatchJob.Status.SUCCEEDED, result_name=result, errors_name=errors, finished_at=now, updated_at=now
    )
    _parts_delete(job, indexes)


def _parts_delete(job: BatchJob, indexes: list[int]) -> None:
    for index in indexes:
        for kind in ("part", "errors"):
            with contextlib.suppress(Exception):
                objects.delete(part_name(job, index, kind))


def batch_job_fail(*, job_id: int, code: str, message: str, extra: dict | None = None) -> None:
    now = timezone.now()
    BatchJob.objects.filter(pk=job_id, status__in=(BatchJob.Status.QUEUED, BatchJob.Status.RUNNING)).update(
        status=BatchJob.Status.FAILED,
        error_code=code or "internal_error",
        error_message=message[:10_000],
        error_extra=extra or {},
        finished_at=now,
        updated_at=now,
    )


def _drift(job: BatchJob, outcome) -> dict | None:
    """The sample's drift against the version's training profile; ``None`` when unknown (no profile, MLflow
    down): monitoring never fails a job."""
    from ..drift import bin_counts, drift_summary
    from ..monitoring import version_profile

    try:
        profile = version_profile(model_name=job.model_name, version=job.model_version)
        if profile is None:
            return None
        counts = {
            name: bin_counts(profile["features"][name]["edges"], outcome.sample[:, index])
            for index, name in enumerate(outcome.feature_names)
            if name in profile["features"]
        }
        summary = drift_summary(
            profile,
            counts,
            len(outcome.sample),
            threshold=settings.MDS_DRIFT_PSI_THRESHOLD,
            min_rows=settings.MDS_DRIFT_MIN_ROWS,
        )
        return {**summary, "sample": "first rows"}
    except Exception as exc:
        logger.warning("No drift for batch job %s: %s", job.pk, exc)
        return None


# --- Dispatch and sweeping ----------------------------------------------------------------------------------------


def _dispatch(kind: str, object_id: int) -> bool:
    """Send a plan, chunk or join message (in embedded mode: hand it to the batch thread); ``False`` and the row
    left for the sweeper when the broker cannot take it."""
    from .. import tasks

    now = timezone.now()
    if embedded.background():
        _mark(kind, object_id, now)
        embedded.submit(_run_embedded, kind, object_id)
        return True
    task = {
        "plan": tasks.batch_job_plan_task,
        "chunk": tasks.batch_chunk_execute_task,
        "join": tasks.batch_job_join_task,
    }[kind]
    _mark(kind, object_id, now)
    try:
        task.apply_async(args=(object_id,))
    except Exception as exc:  # whatever the broker client raises: the row is stored, the sweeper sends it later
        logger.warning("Could not send batch %s %s to the broker (%s); the sweeper will", kind, object_id, exc)
        _mark(kind, object_id, None)
        return False
    return True


def _mark(kind: str, object_id: int, at) -> None:
    try:
        if kind == "chunk":
            BatchChunk.objects.filter(pk=object_id).update(dispatched_at=at)
        else:
            field = "dispatched_at" if kind == "plan" else "join_dispatched_at"
            BatchJob.objects.filter(pk=object_id).update(**{field: at})
    except DatabaseError as exc:
        logger.warning("Could not record the dispatch of batch %s %s: %s", kind, object_id, exc)


def _run_embedded(kind: str, object_id: int) -> None:
    {
        "plan": lambda: batch_job_plan(job_id=object_id),
        "chunk": lambda: batch_chunk_execute(chunk_id=object_id, heartbeat=True),
        "join": lambda: batch_job_join(job_id=object_id),
    }[kind]()


def batch_jobs_sweep(*, resend_all: bool = False) -> dict[str, list[int]]:
    """Re-send what has no message on its way: queued jobs' plans, chunks whose execution is gone (re-queued
    first) or that were never sent, and the joins of jobs whose chunks are all done. Runs on beat.

    Args:
        resend_all: send every queued plan, chunk and due join at once, whenever it was last sent: as an embedded
            process starts, the messages an earlier process held in memory are gone with it.
    """
    now = timezone.now()
    grace = now - timedelta(seconds=settings.MDS_DISPATCH_GRACE)
    resend = now - timedelta(seconds=settings.MDS_DISPATCH_RESEND_AFTER)
    due = Q(dispatched_at__isnull=True, updated_at__lt=grace) | Q(dispatched_at__lt=resend)
    if resend_all:
        due = Q()
    plans = list(BatchJob.objects.filter(due, status=BatchJob.Status.QUEUED).values_list("pk", flat=True))
    requeued = []
    running = BatchChunk.objects.filter(status=BatchChunk.Status.RUNNING, job__status=BatchJob.Status.RUNNING)
    for chunk in running:
        reason = chunk_lease_dead_reason(chunk, now)
        if reason and BatchChunk.objects.filter(pk=chunk.pk, claim=chunk.claim).update(
            status=BatchChunk.Status.QUEUED, claim=None, claimed_by="", heartbeat_at=None, dispatched_at=None
        ):
            logger.warning("Re-queuing batch job %s chunk %s: %s", chunk.job_id, chunk.index, reason)
            requeued.append(chunk.pk)
    chunk_due = Q(pk__in=requeued) | Q(dispatched_at__isnull=True, updated_at__lt=grace) | Q(dispatched_at__lt=resend)
    if resend_all:
        chunk_due = Q()
    chunks = list(
        BatchChunk.objects.filter(chunk_due, status=BatchChunk.Status.QUEUED, job__status=BatchJob.Status.RUNNING)
        .order_by("job", "index")
        .values_list("pk", flat=True)
    )
    joins = list(
        BatchJob.objects.filter(status=BatchJob.Status.RUNNING, chunks_total__gt=0, chunks_done__gte=F("chunks_total"))
        .filter(Q() if resend_all else Q(join_dispatched_at__isnull=True) | Q(join_dispatched_at__lt=resend))
        .values_list("pk", flat=True)
    )
    for job_id in plans:
        _dispatch("plan", job_id)
    for chunk_id in chunks:
        _dispatch("chunk", chunk_id)
    for job_id in joins:
        _dispatch("join", job_id)
    return {"plans": plans, "requeued": requeued, "chunks": chunks, "joins": joins}
