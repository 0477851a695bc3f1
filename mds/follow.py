"""Progress bars: bytes of the upload, then the job's progress until it is finished, then (for a batch job) bytes
of the result's download."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from .client import ApiClient, ApiError

FINISHED = ("success", "failed", "cancelled")
# Where each stage starts, for servers whose jobs carry no ``progress`` field (it came with cancellable jobs).
STAGE_PROGRESS = {"queued": 0.0, "loading": 0.05, "training": 0.15, "registering": 0.85, "done": 1.0}
# A GET that fails this many times in a row ends the follow (the server is gone, not briefly busy).
MAX_POLL_ERRORS = 10


@contextmanager
def upload_progress(console: Console, *, total: int, name: str) -> Iterator[Callable[[int], None]]:
    """A bar of bytes sent; yields the callback to call with the bytes sent so far."""
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"upload {name}", total=total)

        def show_sent(sent: int) -> None:
            # The body also holds the form fields and part headers; the bar counts the file's bytes.
            progress.update(task, completed=min(total, sent))

        yield show_sent
        progress.update(task, completed=total, description=f"uploaded {name}")


def job_progress(job: dict) -> float:
    """0-1: the server's own figure if it sends one, else where the job's stage begins."""
    if job["status"] == "success":
        return 1.0
    value = job.get("progress")
    if isinstance(value, int | float):
        return min(1.0, max(0.0, float(value)))
    return STAGE_PROGRESS.get(job.get("stage", ""), 0.0)


def batch_progress(job: dict) -> float:
    """0-1 of a batch job: its rows done over its rows in all (once the server has counted them), else the server's
    ``progress``. Skipped rows count as done: they were read and answered for in the errors file."""
    if job["status"] == "success":
        return 1.0
    total, done = job.get("rows_total"), job.get("rows_done")
    if isinstance(total, int) and total > 0 and isinstance(done, int):
        return min(1.0, max(0.0, (done + (job.get("rows_skipped") or 0)) / total))
    value = job.get("progress")
    if isinstance(value, int | float):
        return min(1.0, max(0.0, float(value)))
    return 0.0


def batch_rows(job: dict) -> str:
    """``1,200/10,000 rows`` (``1,200 rows`` while the total is unknown); skipped rows named when there are some."""
    done = (job.get("rows_done") or 0) + (job.get("rows_skipped") or 0)
    total = job.get("rows_total")
    text = f"{done:,}/{total:,} rows" if isinstance(total, int) else f"{done:,} rows"
    if job.get("rows_skipped"):
        text += f", {job['rows_skipped']:,} skipped"
    return text


def batch_follow(client: ApiClient, job: dict, console: Console, *, interval: float) -> dict:
    """Poll ``GET /batch/<id>`` every ``interval`` seconds until the job is finished; returns it then."""
    columns = [TextColumn("batch {task.fields[job_id]} {task.description:<9}"), BarColumn()]
    columns += [TaskProgressColumn(), TextColumn("{task.fields[rows]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(
            job["status"],
            total=1.0,
            job_id=job["id"],
            rows=batch_rows(job),
            completed=batch_progress(job),  # type: ignore[arg-type]
        )
        job_id = job["id"]
        for current in _polled(lambda: client.batch_get(job_id=job_id), job, interval=interval):
            job = current
            progress.update(task, completed=batch_progress(job), description=job["status"], rows=batch_rows(job))
    return job


@contextmanager
def download_progress(console: Console, *, name: str) -> Iterator[Callable[[int, int | None], None]]:
    """A bar of bytes received; yields the callback to call with the bytes so far and the length if known."""
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"download {name}", total=None)

        def show_received(received: int, length: int | None) -> None:
            progress.update(task, completed=received, total=length)

        yield show_received
        total = progress.tasks[0].completed
        progress.update(task, total=total, completed=total, description=f"downloaded {name}")


def _polled(get: Callable[[], dict], job: dict, *, interval: float) -> Iterator[dict]:
    """The job as each poll finds it, every ``interval`` seconds, until it is finished."""
    errors = 0
    while job["status"] not in FINISHED:
        time.sleep(interval)
        try:
            job = get()
            errors = 0
        except ApiError as error:
            # A restart of the web process or a 503 from a briefly unavailable database is polled through.
            errors += 1
            if errors >= MAX_POLL_ERRORS or error.status in (401, 403, 404):
                raise
            continue
        yield job


def job_follow(client: ApiClient, job: dict, console: Console, *, interval: float) -> dict:
    """Poll ``GET /train/<id>`` every ``interval`` seconds until the job is finished; returns it then."""
    columns = [TextColumn("job {task.fields[job_id]} {task.description:<12}"), BarColumn()]
    columns += [TaskProgressColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        # rich annotates add_task's ``completed`` as int, though it keeps a float (as ``update`` takes it).
        task = progress.add_task(
            job["stage"],
            total=1.0,
            job_id=job["id"],
            completed=job_progress(job),  # type: ignore[arg-type]
        )
        job_id = job["id"]
        for current in _polled(lambda: client.job_get(job_id=job_id), job, interval=interval):
            job = current
            progress.update(task, completed=job_progress(job), description=job["stage"])
        progress.update(task, description=job["status"])
    return job
