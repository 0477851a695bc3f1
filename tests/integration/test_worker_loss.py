"""A training job survives its worker being killed with SIGKILL mid-training and registers exactly one version.

Training tasks are acknowledged late and rejected back to the queue when their worker is lost. Two real deaths:
the pool process dies (the OOM killer's usual victim), and the main worker process, and its pool, die with it.
Either way the job's lease names a process that is gone, so the next claim or dispatcher takes the job over.
"""

import re

import pytest

from tests.factories import weather_csv

from .support import job_wait, train, worker_children, worker_kill, worker_log, worker_pid, worker_start

pytestmark = pytest.mark.integration

# Large enough that fitting takes several seconds on two cores, so the kill lands mid-training; small enough that the
# second attempt (two fits, the conversion and the registration) ends well inside CI's 40 s soft time limit
# (.ci/run) on a slow machine, where 300 trees took 40 s; without the backtest's three extra fits.
SLOW_TRAINING = {"n_estimators": 150, "max_depth": 12, "backtest": 0}


def _is_training(job: dict) -> bool:
    return job["status"] in ("success", "failed") or (job["status"] == "running" and job["stage"] == "training")


def _assert_one_version_for(job: dict, mlflow_client, model_name: str) -> None:
    assert job["status"] == "success", job
    versions = mlflow_client.search_model_versions(f"name = '{model_name}'")
    assert [(int(v.version), v.run_id) for v in versions] == [(1, job["mlflow_run_id"])]
    runs = mlflow_client.search_runs(
        [mlflow_client.get_run(job["mlflow_run_id"]).info.experiment_id],
        filter_string=f"tags.`mds.training_job` = '{job['id']}'",
    )
    assert [(run.info.run_id, run.info.status) for run in runs] == [(job["mlflow_run_id"], "FINISHED")]


def test_job_survives_its_pool_process_killed_mid_training(stack, http, mlflow_client, unique_model_name):
    # given: a slow job that the worker is training right now
    csv = weather_csv(days=5000, seed=5)
    accepted = train(http, stack, csv, f"{unique_model_name}.csv", model_name=unique_model_name, **SLOW_TRAINING)
    running = job_wait(http, stack, accepted["id"], until=_is_training, timeout=60)
    assert (running["status"], running["stage"], running["attempts"]) == ("running", "training", 1)
    (pool_process,) = worker_children(worker_pid(stack))

    # when
    worker_kill(stack, whole=False)

    # then: the worker replaces its pool process, the message comes back and the job finishes on a second attempt
    job = job_wait(http, stack, accepted["id"], timeout=240)
    assert job["attempts"] == 2, job
    _assert_one_version_for(job, mlflow_client, unique_model_name)
    takeover = rf"(Re-queuing|Taking over) training job {job['id']} .*its process \d+ is gone"
    assert re.search(takeover, worker_log(stack)), takeover
    assert "Worker exited prematurely: signal 9 (SIGKILL)" in worker_log(stack)
    assert pool_process not in worker_children(worker_pid(stack))


def test_job_survives_the_whole_worker_killed_mid_training(stack, http, mlflow_client, unique_model_name):
    # given: a slow job that the worker is training right now
    csv = weather_csv(days=5000, seed=6)
    accepted = train(http, stack, csv, f"{unique_model_name}.csv", model_name=unique_model_name, **SLOW_TRAINING)
    running = job_wait(http, stack, accepted["id"], until=_is_training, timeout=60)
    assert (running["status"], running["stage"], running["attempts"]) == ("running", "training", 1)
    dead_worker = worker_pid(stack)

    # when: the worker and its pool die at once, and a new worker starts
    worker_kill(stack, whole=True)
    worker_start(stack)

    # then: the new worker's dispatcher sees the job's process gone and re-queues it at once, long before the
    # broker's visibility timeout would hand the message out again; the new worker finishes it
    assert worker_pid(stack) != dead_worker
    job = job_wait(http, stack, accepted["id"], timeout=240)
    assert job["attempts"] == 2, job
    _assert_one_version_for(job, mlflow_client, unique_model_name)
    takeover = rf"(Re-queuing|Taking over) training job {job['id']} .*its process \d+ is gone"
    assert re.search(takeover, worker_log(stack)), takeover
