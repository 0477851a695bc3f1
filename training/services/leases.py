"""The lease of a running training job: which process runs it, whether that execution still lives, its heartbeat.

A claim (``transitions.job_claim``) gives the job a fresh ``claim`` id, names the process holding it
(``claimed_by``, host:pid) and starts its ``heartbeat_at``. While the execution works, a thread refreshes the
heartbeat every ``MDS_HEARTBEAT_INTERVAL`` seconds. The execution holding the lease is taken for dead when:

- its heartbeat is older than ``MDS_HEARTBEAT_STALE_AFTER`` (its worker died, hangs, or lost the database);
- its process is gone, seen from the same machine (a killed pool process, a restarted worker);
- its process is this one, which is not running the job any more (a retry that finds its own earlier lease).

Another claim, or the dispatcher, may then take the job over; the old execution notices at its next stage (or
heartbeat) that its claim id no longer matches and stops without touching the job.
"""

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from core.errors import JobCancelled, LeaseLost

from ..models import TrainingJob
from . import transitions

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Jobs this process is executing right now: a prefork pool process runs one at a time, eager mode may nest.
_executing: set[int] = set()
_executing_lock = threading.Lock()


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_dead_reason(job: TrainingJob, now=None) -> str | None:
    """Why the execution holding ``job``'s lease cannot be running it any more, or ``None`` if it may be."""
    if job.claim is None or job.heartbeat_at is None:
        return "it has no lease"
    age = ((now or timezone.now()) - job.heartbeat_at).total_seconds()
    if age > settings.MDS_HEARTBEAT_STALE_AFTER:
        return f"its heartbeat is {age:.0f} s old"
    host, _, pid = job.claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    if int(pid) == os.getpid():
        with _executing_lock:
            return None if job.pk in _executing else "this process no longer runs it"
    return None if _process_alive(int(pid)) else f"its process {pid} is gone"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    # A zombie (killed, not yet reaped by its parent) runs nothing. A reused pid looks alive: the heartbeat decides.
    return state not in ("Z", "X")


def database_retry(operation: Callable[[], T], *, attempts: int = 5, delay: float = 0.5) -> T:
    """Run ``operation``; if the database dropped the connection (a restart, ``pg_terminate_backend``), connect
    again and rerun it, ``attempts`` times in all over ~``delay * 2**attempts`` seconds, before raising.

    Only outside a transaction: inside one, a lost connection has lost the transaction too.
    """
    for attempt in range(attempts):
        try:
            return operation()
        except (OperationalError, InterfaceError) as exc:
            if attempt + 1 == attempts or connection.in_atomic_block:
                raise
            logger.warning("Database error (%s); reconnecting", exc)
            connection_reset()
            time.sleep(delay * 2**attempt)
    raise AssertionError("unreachable")


def connection_reset() -> None:
    """Drop this thread's database connection, broken or not; the next query opens a new one."""
    with contextlib.suppress(DatabaseError):
        connection.close()


class Lease:
    """An execution's hold on a claimed job: heartbeat thread, stage updates that check the claim, release.

    Used as a context manager around the work; ``heartbeat_interval=None`` (eager mode: the request itself runs
    the job) starts no thread.
    """

    def __init__(self, job: TrainingJob, *, heartbeat_interval: float | None):
        self.job = job
        if job.claim is None:
            raise ValueError(f"training job {job.pk} is not claimed: there is nothing to hold")
        self.claim: uuid.UUID = job.claim
        self.lost = threading.Event()
        self.cancelled = threading.Event()
        self._progress_written = 0.0
        self._interval = heartbeat_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Lease":
        with _executing_lock:
            _executing.add(self.job.pk)
        if self._interval:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.job.pk}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=(self._interval or 0) + 5)
        with _executing_lock:
            _executing.discard(self.job.pk)

    def check(self) -> None:
        """Raise ``JobCancelled`` if the job was cancelled, ``LeaseLost`` if another execution took it over (seen
        by the heartbeat or a stage or progress update)."""
        if self.cancelled.is_set():
            raise JobCancelled(f"training job {self.job.pk} was cancelled")
        if self.lost.is_set():
            raise LeaseLost(f"training job {self.job.pk} was taken over by another execution")

    def confirm(self) -> None:
        """``check``, and ask the database too: right before an act that must happen once (registering)."""
        self.check()
        if not database_retry(lambda: transitions.job_held(self.job.pk, claim=self.claim)):
            self._claim_gone()
            self.check()

    def stage(self, stage: str, **fields) -> None:
        """Record the stage the work reached (and ``fields`` of the job with it), which also beats the heart;
        ``JobCancelled`` or ``LeaseLost`` if the claim is gone."""
        self._write(stage=stage, **fields)
        self.job.stage = stage
        for name, value in fields.items():
            setattr(self.job, name, value)

    def progress(self, share: float) -> None:
        """Record the share of the work done, at most every ``MDS_PROGRESS_INTERVAL`` seconds (a fit reports after
        every chunk of trees); a checkpoint: ``JobCancelled`` or ``LeaseLost`` if the job is no longer this one's."""
        self.check()
        if time.monotonic() - self._progress_written < settings.MDS_PROGRESS_INTERVAL:
            return
        self._write(progress=min(1.0, max(0.0, share)))

    def _write(self, **fields) -> None:
        self.check()
        if not database_retry(lambda: transitions.job_beat(self.job.pk, claim=self.claim, **fields)):
            self._claim_gone()
            self.check()
        if "progress" in fields:
            self._progress_written = time.monotonic()

    def _claim_gone(self) -> None:
        """The job is no longer running under this claim: cancelled, or taken over by another execution."""
        cancelled = database_retry(lambda: transitions.job_cancelled_under(self.job.pk, claim=self.claim))
        (self.cancelled if cancelled else self.lost).set()

    def release(self) -> None:
        """Give the job back to the queue (its retry is on its way); best effort: the database may be what failed.

        Left unreleased, it is still taken back by the retry, which runs in this process or finds the heartbeat
        stale.
        """
        try:
            database_retry(lambda: transitions.job_release(self.job.pk, claim=self.claim), attempts=2)
        except DatabaseError as exc:
            logger.warning("Could not release training job %s: %s", self.job.pk, exc)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                try:
                    # A connection the server dropped since the last beat is replaced, not reused.
                    connection.close_if_unusable_or_obsolete()
                    if not transitions.job_beat(self.job.pk, claim=self.claim):
                        self._claim_gone()
                        logger.warning("Training job %s was cancelled or taken over", self.job.pk)
                        return
                except DatabaseError as exc:
                    # Unknown whether the lease holds: keep working; the dispatcher judges by the heartbeat's age.
                    logger.warning("Heartbeat of training job %s failed: %s", self.job.pk, exc)
                    connection_reset()
        finally:
            # This thread's own connection.
            connection_reset()
