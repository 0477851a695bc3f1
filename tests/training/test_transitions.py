"""The job state machine: each move happens once, from its own state only, and of racing moves one wins."""

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from training.models import Dataset, TrainingJob
from training.services import transitions

Status, Stage = TrainingJob.Status, TrainingJob.Stage


def stored_job(**fields) -> TrainingJob:
    """A job row as the services leave it (queued by default); no file behind its dataset, nothing runs it."""
    dataset = Dataset.objects.create(
        file="datasets/none.csv", original_name="none.csv", sha256="0" * 64, size_bytes=1, n_rows=1, n_columns=2
    )
    job = TrainingJob.objects.create(dataset=dataset, model_name="m", target_column="y", timestamp_column="t")
    if fields:
        TrainingJob.objects.filter(pk=job.pk).update(**fields)
    return TrainingJob.objects.get(pk=job.pk)


def running(**overrides) -> dict:
    return {
        "status": Status.RUNNING,
        "stage": Stage.TRAINING,
        "attempts": 1,
        "claim": uuid.uuid4(),
        "claimed_by": "elsewhere:4242",
        "heartbeat_at": timezone.now() - timedelta(seconds=300),
        **overrides,
    }


def succeed(job: TrainingJob) -> bool:
    return transitions.job_succeed(job.pk, metrics={"mae": 1.0}, counts={"n": 1}, run_id="r", model_id="m", version=3)


def fail(job: TrainingJob) -> bool:
    return transitions.job_fail(job, code="bad", message="it broke")


def row(job: TrainingJob) -> dict:
    """Every field of the stored job, to compare before and after."""
    return TrainingJob.objects.filter(pk=job.pk).values().get()


# --- Each move happens once ---------------------------------------------------------------------------------------

MOVES: list = [
    pytest.param(
        {},
        lambda job: transitions.job_claim(job, by="here:1"),
        {"status": Status.RUNNING, "stage": Stage.LOADING, "attempts": 1, "claimed_by": "here:1"},
        id="claim-queued",
    ),
    pytest.param(
        running(),
        lambda job: transitions.job_claim(job, by="here:1"),
        {"status": Status.RUNNING, "stage": Stage.LOADING, "attempts": 2, "claimed_by": "here:1"},
        id="claim-from-a-dead-execution",
    ),
    pytest.param(
        running(),
        lambda job: transitions.job_release(job.pk, claim=job.claim),
        {"status": Status.QUEUED, "stage": Stage.QUEUED, "claim": None, "claimed_by": "", "heartbeat_at": None},
        id="release",
    ),
    pytest.param(
        running(dispatched_at=timezone.now()),
        transitions.job_requeue,
        {"status": Status.QUEUED, "stage": Stage.QUEUED, "claim": None, "heartbeat_at": None, "dispatched_at": None},
        id="requeue",
    ),
    pytest.param(
        running(stage=Stage.REGISTERING),
        succeed,
        {"status": Status.SUCCEEDED, "stage": Stage.DONE, "progress": 1.0, "registered_version": 3},
        id="succeed",
    ),
    pytest.param(running(), fail, {"status": Status.FAILED, "error_code": "bad"}, id="fail-running"),
    pytest.param({}, fail, {"status": Status.FAILED, "error_message": "it broke"}, id="fail-queued"),
    pytest.param({}, lambda job: transitions.job_cancel(job.pk), {"status": Status.CANCELLED}, id="cancel-queued"),
    pytest.param(
        running(), lambda job: transitions.job_cancel(job.pk), {"status": Status.CANCELLED}, id="cancel-running"
    ),
    pytest.param(
        {"dispatched_at": None},
        lambda job: transitions.job_dispatch_take(job.pk, dispatched_at=None, at=timezone.now()),
        {"status": Status.QUEUED},
        id="dispatch-take",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("before", "move", "after"), MOVES)
def test_a_move_from_its_state_happens_once(before: dict, move: Callable, after: dict):
    # given: the job, and the same job as another process read it before the move
    job = stored_job(**before)
    read_before = TrainingJob.objects.get(pk=job.pk)

    # when
    first = move(job)
    stored = row(job)
    again = move(read_before)

    # then
    assert (first, again) == (True, False)
    assert {name: stored[name] for name in after} == after
    assert row(job) == stored


@pytest.mark.django_db
def test_a_claim_starts_a_lease_and_keeps_the_first_start():
    # given: a job an execution started once, now back in the queue
    started = timezone.now() - timedelta(hours=1)
    job = stored_job(attempts=1, started_at=started)

    # when
    claimed = transitions.job_claim(job, by="here:1")

    # then: the job in memory is the stored one
    assert claimed
    stored = row(job)
    assert (stored["claim"], stored["claimed_by"], stored["heartbeat_at"]) == (job.claim, "here:1", job.heartbeat_at)
    assert (stored["started_at"], stored["attempts"]) == (started, 2) == (job.started_at, job.attempts)


@pytest.mark.django_db
def test_a_beat_under_the_claim_writes_its_fields_and_the_heartbeat():
    # given
    job = stored_job(**running())

    # when
    beat = transitions.job_beat(job.pk, claim=job.claim, stage=Stage.REGISTERING, progress=0.9)

    # then
    stored = row(job)
    assert beat and (stored["stage"], stored["progress"]) == (Stage.REGISTERING, 0.9)
    assert stored["heartbeat_at"] > job.heartbeat_at
    assert transitions.job_held(job.pk, claim=job.claim)


@pytest.mark.django_db
def test_a_release_counts_the_retry_as_sent_and_a_requeue_leaves_the_job_to_the_dispatcher():
    # given
    released, requeued = stored_job(**running()), stored_job(**running())

    # when
    transitions.job_release(released.pk, claim=released.claim)
    transitions.job_requeue(requeued)

    # then
    assert row(released)["dispatched_at"] is not None
    assert row(requeued)["dispatched_at"] is None


@pytest.mark.django_db
def test_a_dispatch_mark_changes_a_queued_job_only():
    # given
    queued, claimed = stored_job(), stored_job(**running(dispatched_at=None))
    at = timezone.now()

    # when
    marks = transitions.job_dispatch_mark(queued.pk, at=at), transitions.job_dispatch_mark(claimed.pk, at=at)

    # then
    assert marks == (True, False)
    assert (row(queued)["dispatched_at"], row(claimed)["dispatched_at"]) == (at, None)


# --- From any other state, a move does nothing and says so --------------------------------------------------------

FINISHED = [
    pytest.param({"status": Status.SUCCEEDED, "registered_version": 1}, id="succeeded"),
    pytest.param({"status": Status.FAILED, "error_code": "bad"}, id="failed"),
    pytest.param({"status": Status.CANCELLED}, id="cancelled"),
]

ALL_MOVES = [
    pytest.param(lambda job: transitions.job_claim(job, by="here:1"), id="claim"),
    pytest.param(lambda job: transitions.job_beat(job.pk, claim=job.claim), id="beat"),
    pytest.param(lambda job: transitions.job_release(job.pk, claim=job.claim), id="release"),
    pytest.param(transitions.job_requeue, id="requeue"),
    pytest.param(succeed, id="succeed"),
    pytest.param(fail, id="fail"),
    pytest.param(lambda job: transitions.job_cancel(job.pk), id="cancel"),
    pytest.param(
        lambda job: transitions.job_dispatch_take(job.pk, dispatched_at=job.dispatched_at, at=timezone.now()),
        id="dispatch-take",
    ),
    pytest.param(lambda job: transitions.job_dispatch_mark(job.pk, at=timezone.now()), id="dispatch-mark"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("finished", FINISHED)
@pytest.mark.parametrize("move", ALL_MOVES)
def test_a_finished_job_never_moves(finished: dict, move: Callable):
    # given
    job = stored_job(**running(**finished))
    before = row(job)

    # when
    moved = move(job)

    # then
    assert not moved and row(job) == before


WRONG_STATE = [
    pytest.param({}, lambda job: transitions.job_beat(job.pk, claim=uuid.uuid4()), id="beat-not-running"),
    pytest.param(running(), lambda job: transitions.job_beat(job.pk, claim=uuid.uuid4()), id="beat-other-claim"),
    pytest.param(running(), lambda job: transitions.job_release(job.pk, claim=uuid.uuid4()), id="release-other-claim"),
    pytest.param({}, transitions.job_requeue, id="requeue-queued"),
    pytest.param(
        running(stage=Stage.REGISTERING), lambda job: transitions.job_cancel(job.pk), id="cancel-registering"
    ),
    pytest.param(
        running(),
        lambda job: transitions.job_dispatch_take(job.pk, dispatched_at=None, at=timezone.now()),
        id="dispatch-take-running",
    ),
    pytest.param(
        {"dispatched_at": timezone.now()},
        lambda job: transitions.job_dispatch_take(job.pk, dispatched_at=None, at=timezone.now()),
        id="dispatch-take-sent-since",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("before", "move"), WRONG_STATE)
def test_a_move_from_another_state_does_nothing(before: dict, move: Callable):
    # given
    job = stored_job(**before)
    stored = row(job)

    # when
    moved = move(job)

    # then
    assert not moved and row(job) == stored


@pytest.mark.django_db
@pytest.mark.parametrize(
    "since",
    [
        pytest.param({"heartbeat_at": timezone.now()}, id="it-beat"),
        pytest.param({"claim": uuid.uuid4(), "attempts": 2}, id="another-claim-took-it"),
        pytest.param({"status": Status.QUEUED, "claim": None, "heartbeat_at": None}, id="it-was-released"),
    ],
)
@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda job: transitions.job_claim(job, by="here:1"), id="claim"),
        pytest.param(transitions.job_requeue, id="requeue"),
        pytest.param(fail, id="fail"),
    ],
)
def test_a_move_decided_on_a_read_does_nothing_once_the_job_moved_since(since: dict, move: Callable):
    # given: a job read while its execution looked dead, which then moved
    read = stored_job(**running())
    TrainingJob.objects.filter(pk=read.pk).update(**since)
    stored = row(read)

    # when
    moved = move(read)

    # then
    assert not moved and row(read) == stored


# --- Of racing moves, one wins ------------------------------------------------------------------------------------


def race(moves: list[Callable[[], bool]]) -> list[bool]:
    """Run ``moves`` at once, each in a thread with its own database connection; what each returned, in order."""
    results: list = [None] * len(moves)
    start = threading.Barrier(len(moves))

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = moves[index]()
        except BaseException as exc:  # shown by the assertion of the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(moves))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


RACES = [
    pytest.param({}, lambda job, n: transitions.job_claim(job, by=f"here:{n}"), id="claims-of-a-queued-job"),
    pytest.param(running(), lambda job, n: transitions.job_claim(job, by=f"here:{n}"), id="takeovers"),
    pytest.param(running(), lambda job, n: transitions.job_requeue(job), id="dispatchers-requeuing"),
    pytest.param(running(), lambda job, n: transitions.job_release(job.pk, claim=job.claim), id="releases"),
    pytest.param(
        {}, lambda job, n: transitions.job_dispatch_take(job.pk, dispatched_at=None, at=timezone.now()), id="sends"
    ),
    pytest.param(
        running(),
        lambda job, n: (lambda job: transitions.job_cancel(job.pk), succeed, fail)[n % 3](job),
        id="cancel-succeed-fail",
    ),
    pytest.param(
        running(),
        lambda job, n: transitions.job_requeue(job) if n % 2 else transitions.job_claim(job, by=f"here:{n}"),
        id="dispatcher-requeuing-claim-taking-over",
    ),
]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads writing at once need PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("before", "move"), RACES)
def test_of_racing_moves_one_wins(before: dict, move: Callable):
    # given: eight processes that read the same job
    job = stored_job(**before)
    reads = [TrainingJob.objects.get(pk=job.pk) for _ in range(8)]

    # when
    results = race([lambda read=read, n=n: move(read, n) for n, read in enumerate(reads)])

    # then
    assert sorted(results, key=str) == [False] * 7 + [True], results
    stored = row(job)
    assert stored["attempts"] <= before.get("attempts", 0) + 1
    winner = reads[results.index(True)]
    if stored["status"] == Status.RUNNING:
        assert (stored["claim"], stored["claimed_by"]) == (winner.claim, winner.claimed_by)
