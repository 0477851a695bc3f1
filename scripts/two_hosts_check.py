"""The checks ``scripts/two_hosts.sh`` runs once its two hosts are up, through the API as a client would.

    two_hosts_check.py run --host HOSTNAME,NETNS,INFERENCE_URL --host ... [--alias-check-interval S]
    two_hosts_check.py batch --host HOSTNAME,NETNS,INFERENCE_URL --host ... [--rows N]
    two_hosts_check.py pg-latency DATABASE_URL

``run`` reads the stack's coordinates from ``stack.env``'s variables (``MDS_STACK_*``, MLflow's user and password)
and prints one ``[PASS]``/``[FAIL]`` line per check; it exits 1 if one failed. The job rows (``claimed_by``,
host:pid) are read from the stack's database: the API does not show which process ran a job. ``batch`` runs check
(d), a batch job spread over both hosts' workers with one of them killed mid-job; it needs a worker in each host
again (``run``'s check (b) kills one), so the script runs it on its own after restarting them.
"""

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sample_data.make_weather import make_weather  # noqa: E402

TRAININGS = 10
# Each host must run at least this many of the TRAININGS for them to count as spread.
MIN_PER_HOST = 2
# Fitting and converting this take several seconds on two cores, so a kill lands mid-training.
SLOW_TRAINING = {"n_estimators": 300, "max_depth": 12}
# A replica reads the newest alias move's id at most once per check interval, and forgets its aliases when it changed:
# the move shows within the interval plus one database read and one poll interval.
ALIAS_GRACE = 1.0
POLL = 0.1
# (d): rows of the batch input (~45 bytes of an id and features each); two_hosts.sh sets chunks
# small enough (MDS_BATCH_CHUNK_BYTES) for this to make dozens of them.
BATCH_ROWS = 600_000
# Both hosts must have scored a chunk before the kill, and the survivor at least this many in all.
MIN_CHUNKS_PER_HOST = 2


class CheckFailed(Exception):
    pass


@dataclass(frozen=True)
class Host:
    hostname: str
    netns: str
    inference_url: str


class Stack:
    def __init__(self):
        env = os.environ
        self.web = env["MDS_STACK_WEB_URL"]
        self.mlflow = env["MDS_STACK_MLFLOW_URI"]
        self.database_url = env["MDS_STACK_DATABASE_URL"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {env['MDS_STACK_TOKEN']}"
        self.mlflow_auth = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])

    def train(self, csv: bytes, **params) -> int:
        response = self.http.post(f"{self.web}/train", params=params, files={"file": ("data.csv", csv)}, timeout=60)
        if response.status_code != 202:
            raise CheckFailed(f"POST /train answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]

    def job(self, job_id: int) -> dict:
        response = self.http.get(f"{self.web}/train/{job_id}", timeout=30)
        response.raise_for_status()
        return response.json()

    def job_wait(self, job_id: int, until, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise CheckFailed(f"job {job_id} stuck after {timeout:.0f} s: {job['status']}/{job['stage']}")
            time.sleep(0.5)

    def job_rows(self, job_ids: list[int]) -> dict[int, tuple]:
        with psycopg.connect(self.database_url) as connection:
            rows = connection.execute(
                "SELECT id, status, claimed_by, attempts, registered_version, mlflow_run_id"
                " FROM training_trainingjob WHERE id = ANY(%s)",
                [job_ids],
            ).fetchall()
        return {row[0]: row[1:] for row in rows}

    def mlflow_get(self, path: str, **params) -> dict:
        response = requests.get(
            f"{self.mlflow}/api/2.0/mlflow/{path}", params=params, auth=self.mlflow_auth, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def versions(self, name: str) -> list[tuple[int, str]]:
        found = self.mlflow_get("model-versions/search", filter=f"name = '{name}'", max_results=200)
        return sorted((int(v["version"]), v["run_id"]) for v in found.get("model_versions", []))

    def runs_of_job(self, run_id: str, job_id: int) -> list[tuple[str, str]]:
        experiment = self.mlflow_get("runs/get", run_id=run_id)["run"]["info"]["experiment_id"]
        response = requests.post(
            f"{self.mlflow}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [experiment], "filter": f"tags.`mds.training_job` = '{job_id}'"},
            auth=self.mlflow_auth,
            timeout=30,
        )
        response.raise_for_status()
        return [(run["info"]["run_id"], run["info"]["status"]) for run in response.json().get("runs", [])]


def finished(job: dict) -> bool:
    return job["status"] in ("success", "failed")


def host_of(claimed_by: str) -> str:
    return claimed_by.rpartition(":")[0]


def csv_bytes(frame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def check_spread(stack: Stack, hosts: list[Host], state: dict) -> str:
    model = state["model"] = f"two_hosts_{int(time.time())}"
    csv = (ROOT / "sample_data" / "time_series_weather.csv").read_bytes()
    job_ids = [stack.train(csv, model_name=model, n_estimators=20) for _ in range(TRAININGS)]
    for job_id in job_ids:
        stack.job_wait(job_id, finished, timeout=600)
    rows = stack.job_rows(job_ids)
    failed = {job_id: row[0] for job_id, row in rows.items() if row[0] != "success"}
    if failed:
        raise CheckFailed(f"jobs not successful: {failed}")
    per_host = Counter(host_of(row[1]) for row in rows.values())
    processes = sorted({row[1] for row in rows.values()})
    mine = sorted((row[3], row[4]) for row in rows.values())
    if stack.versions(model) != mine:
        raise CheckFailed(f"MLflow's versions of {model} {stack.versions(model)} are not the jobs' {mine}")
    spread = ", ".join(f"{host.hostname} {per_host[host.hostname]}" for host in hosts)
    if set(per_host) != {host.hostname for host in hosts} or min(per_host.values()) < MIN_PER_HOST:
        raise CheckFailed(f"not spread over both hosts (at least {MIN_PER_HOST} each): {dict(per_host)}")
    return (
        f"{TRAININGS} jobs of {model}, all success; ran on {spread} (processes {', '.join(processes)}); "
        f"MLflow has versions 1-{len(mine)}, one per job"
    )


def host_workers(host: Host) -> list[int]:
    pids = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True, check=True).stdout
    workers = []
    for pid in pids.split():
        try:
            if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(int(pid))
        except FileNotFoundError:
            pass
    return workers


def check_worker_killed(stack: Stack, hosts: list[Host], state: dict) -> str:
    model = f"{state.get('model', f'two_hosts_{int(time.time())}')}_kill"
    job_id = stack.train(csv_bytes(make_weather(days=5000, seed=6)), model_name=model, **SLOW_TRAINING)
    running = stack.job_wait(job_id, lambda job: finished(job) or job["stage"] == "training", timeout=120)
    if finished(running):
        raise CheckFailed(f"job {job_id} finished before it could be killed: {running['status']}")
    victim_process = stack.job_rows([job_id])[job_id][1]
    (victim,) = [host for host in hosts if host.hostname == host_of(victim_process)]
    pids = host_workers(victim)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    time.sleep(0.5)
    if host_workers(victim):
        raise CheckFailed(f"{victim.hostname}'s worker processes survived SIGKILL: {host_workers(victim)}")

    job = stack.job_wait(job_id, finished, timeout=300)
    took = time.monotonic() - killed_at
    status, claimed_by, attempts, version, run_id = stack.job_rows([job_id])[job_id]
    if status != "success":
        raise CheckFailed(f"job {job_id} ended {status}: {job.get('error')}")
    if host_of(claimed_by) == victim.hostname or attempts != 2:
        raise CheckFailed(f"job {job_id} finished by {claimed_by} on attempt {attempts}, expected the other host, 2")
    versions, runs = stack.versions(model), stack.runs_of_job(run_id, job_id)
    if versions != [(1, run_id)] or runs != [(run_id, "FINISHED")]:
        raise CheckFailed(f"expected one version and one run of job {job_id}; MLflow has {versions}, runs {runs}")
    return (
        f"job {job_id} ({model}) was training in {victim_process}; SIGKILL to {victim.hostname}'s worker "
        f"processes {pids}; {claimed_by} finished it on attempt 2, {took:.0f} s after the kill; MLflow has one "
        f"version (1, run {run_id[:8]}) and one run for the job"
    )


def served_version(session: requests.Session, host: Host, model: str, rows: bytes, **params) -> int:
    response = session.post(
        f"{host.inference_url}/predict",
        params={"model_name": model, **params},
        files={"file": ("rows.csv", rows)},
        timeout=30,
    )
    if response.status_code != 200:
        raise CheckFailed(f"{host.hostname}'s /predict answered {response.status_code}: {response.text[:300]}")
    return int(response.headers["X-Model-Version"])


def check_alias_move(stack: Stack, hosts: list[Host], state: dict, check_interval: float) -> str:
    model = state.get("model")
    if model is None:
        raise CheckFailed("no model: (a) did not train one")
    rows = b"\n".join((ROOT / "sample_data" / "time_series_weather.csv").read_bytes().splitlines()[:4])
    current = {served_version(stack.http, host, model, rows, alias="champion") for host in hosts}
    if len(current) != 1:
        raise CheckFailed(f"the replicas serve different champions before the move: {current}")
    (before,) = current
    numbers = [number for number, _ in stack.versions(model)]
    target = max(numbers) if before != max(numbers) else min(numbers)
    for host in hosts:
        # Loaded beforehand, so that what is timed is the alias, not a model download.
        served_version(stack.http, host, model, rows, version=target)

    # Followers ask from the moment the move is sent: MLflow holds it before the answer, which also waits for the
    # mirror and the audit. Each replica is timed against the answer: the latest the move can have reached MLflow.
    seen: dict[str, float] = {}
    errors: list[str] = []
    moving = threading.Event()

    def follow(host: Host) -> None:
        session = requests.Session()
        session.headers.update(stack.http.headers)
        moving.wait()
        deadline = time.monotonic() + 120 + 3 * check_interval
        while time.monotonic() < deadline:
            try:
                if served_version(session, host, model, rows, alias="champion") == target:
                    seen[host.hostname] = time.monotonic()
                    return
            except (CheckFailed, requests.RequestException) as exc:
                errors.append(str(exc))
                return
            time.sleep(POLL)

    followers = [threading.Thread(target=follow, args=(host,)) for host in hosts]
    for thread in followers:
        thread.start()
    sent = time.monotonic()
    moving.set()
    response = stack.http.post(
        f"{stack.web}/models/{model}/aliases/champion", json={"version": target, "force": True}, timeout=120
    )
    answered = time.monotonic()
    for thread in followers:
        thread.join()
    if response.status_code != 200 or response.json().get("previous_version") != before:
        raise CheckFailed(f"the alias move answered {response.status_code}: {response.text[:300]}")
    if errors:
        raise CheckFailed("; ".join(errors))
    timings = ", ".join(
        f"{host.hostname} {seen[host.hostname] - answered:+.1f} s" for host in hosts if host.hostname in seen
    )
    bound = check_interval + ALIAS_GRACE
    summary = (
        f"champion of {model} moved {before} -> {target}; the POST took {answered - sent:.1f} s; served, from its "
        f"answer, by {timings or 'no replica'}"
    )
    if len(seen) != len(hosts) or max(seen.values()) - answered > bound:
        raise CheckFailed(f"{summary}; bound {bound:.1f} s")
    return f"{summary} (MDS_ALIAS_CHECK_INTERVAL {check_interval:g} s; bound interval + {ALIAS_GRACE:g} s)"


def batch_input(rows: int) -> bytes:
    """``rows`` rows of the sample's features, cycled, each with its 0-based ``id`` in front: a result in input order
    with every row exactly once has the ids 0..rows-1, in order."""
    lines = (ROOT / "sample_data" / "time_series_weather.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("timestamp", "target")]
    features = [",".join(line.split(",")[i] for i in keep) for line in lines[1:]]
    body = io.StringIO()
    body.write("id," + ",".join(header[i] for i in keep) + "\n")
    for number in range(rows):
        body.write(f"{number},{features[number % len(features)]}\n")
    return body.getvalue().encode()


def chunk_rows(stack: Stack, job_id: int) -> list[tuple]:
    with psycopg.connect(stack.database_url) as connection:
        return connection.execute(
            'SELECT "index", status, claimed_by, attempts FROM inference_batchchunk'
            ' WHERE job_id = %s ORDER BY "index"',
            [job_id],
        ).fetchall()


def check_batch(stack: Stack, hosts: list[Host], rows: int) -> str:
    model = f"two_hosts_batch_{int(time.time())}"
    trained = stack.train(
        (ROOT / "sample_data" / "time_series_weather.csv").read_bytes(), model_name=model, n_estimators=50
    )
    if stack.job_wait(trained, finished, timeout=600)["status"] != "success":
        raise CheckFailed(f"training job {trained} for the batch check failed")
    response = stack.http.post(
        f"{stack.web}/batch",
        params={"model_name": model, "version": 1, "passthrough": "id"},
        files={"file": ("ids.csv", batch_input(rows), "text/csv")},
        timeout=300,
    )
    if response.status_code != 202:
        raise CheckFailed(f"POST /batch answered {response.status_code}: {response.text[:300]}")
    job_id = response.json()["id"]

    # Who held each chunk, as seen every POLL seconds: a chunk redone after the kill is claimed again.
    claims: dict[int, list[str]] = {}
    names = {host.hostname for host in hosts}
    victim = killed_chunks = None
    killed_at = 0.0
    deadline = time.monotonic() + 600
    while True:
        job = stack.http.get(f"{stack.web}/batch/{job_id}", timeout=30).json()
        chunks = chunk_rows(stack, job_id)
        for index, _status, claimed_by, _attempts in chunks:
            if claimed_by and claims.setdefault(index, [claimed_by])[-1] != claimed_by:
                claims[index].append(claimed_by)
        if job["status"] in ("success", "failed", "cancelled"):
            break
        if victim is None:
            running = {host_of(by): [] for _, status, by, _ in chunks if status == "running" and by}
            for index, status, by, _ in chunks:
                if status == "running" and by:
                    running[host_of(by)].append(index)
            scored = {host_of(by) for _, status, by, _ in chunks if status == "done" and by}
            # Kill once both hosts have scored chunks, while a chunk is being scored on the one killed.
            if scored == names and running:
                victim_name = sorted(running)[0]
                (victim,) = [host for host in hosts if host.hostname == victim_name]
                killed_chunks = running[victim_name]
                for pid in host_workers(victim):
                    os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
        if time.monotonic() > deadline:
            raise CheckFailed(f"batch job {job_id} stuck: {job['status']}, {job['chunks_done']}/{job['chunks_total']}")
        time.sleep(POLL)
    took = time.monotonic() - killed_at
    chunks = chunk_rows(stack, job_id)
    scored_by = Counter(host_of(claimed_by) for _, _, claimed_by, _ in chunks)
    # A chunk counts once per host that held it, however often the poll saw it there.
    taken_by = Counter(host_of(by) for _, by in {(index, by) for index, seen in claims.items() for by in seen})
    taken = set(taken_by)
    summary = (
        f"batch job {job_id} ({rows:,} rows, {len(chunks)} chunks) {job['status']}; chunks scored by "
        + ", ".join(f"{name} {scored_by[name]}" for name in sorted(names))
    )
    if job["status"] != "success":
        raise CheckFailed(f"{summary}: {job.get('error')}")
    if victim is None:
        raise CheckFailed(f"{summary}: finished before both hosts had scored a chunk, nothing was killed ({claims})")
    survivors = names - {victim.hostname}
    if (
        taken != names
        or min(scored_by[name] for name in names) < 1
        or min(scored_by[name] for name in survivors) < MIN_CHUNKS_PER_HOST
    ):
        raise CheckFailed(f"{summary}: not spread over both hosts (taken: {dict(taken_by)})")
    redone = {index: claims[index] for index in killed_chunks}
    if any(host_of(claims[index][-1]) == victim.hostname for index in killed_chunks):
        raise CheckFailed(f"{summary}: a chunk running on the killed {victim.hostname} was not redone: {redone}")
    result = stack.http.get(f"{stack.web}/batch/{job_id}/result", timeout=300)
    if result.status_code != 200:
        raise CheckFailed(f"{summary}: GET /batch/{job_id}/result answered {result.status_code}")
    lines = result.content.decode().splitlines()
    column = lines[0].split(",").index("id")
    ids = [int(line.split(",")[column]) for line in lines[1:]]
    if ids != list(range(rows)) or job["rows_done"] != rows or job["rows_total"] != rows:
        duplicated = sum(count - 1 for count in Counter(ids).values() if count > 1)
        missing = rows - len(set(ids))
        raise CheckFailed(
            f"{summary}: the result has {len(ids):,} rows ({missing} ids missing, {duplicated} doubled, "
            f"in order: {ids == sorted(ids)}); the job counts {job['rows_done']}/{job['rows_total']}"
        )
    return (
        f"{summary}; taken (claims seen) {dict(taken_by)}; SIGKILL to {victim.hostname}'s worker while it scored "
        f"chunk(s) {killed_chunks}, redone by {', '.join(sorted({host_of(c[-1]) for c in redone.values()}))} "
        f"({took:.0f} s from the kill to the job's end); the result has ids 0..{rows - 1}, each once, in order"
    )


def run_batch(hosts: list[Host], rows: int) -> int:
    title = "(d) a batch job spread over both hosts' workers, one killed mid-job: every row exactly once"
    started = time.monotonic()
    try:
        detail, passed = check_batch(Stack(), hosts, rows), True
    except CheckFailed as exc:
        detail, passed = str(exc), False
    except Exception as exc:  # a broken check is a failed check, reported like the others
        detail, passed = f"{type(exc).__name__}: {exc}", False
    print(f"[{'PASS' if passed else 'FAIL'}] {title} ({time.monotonic() - started:.0f} s)", flush=True)
    print(f"       {detail}", flush=True)
    return 0 if passed else 1


def run(hosts: list[Host], check_interval: float) -> int:
    stack = Stack()
    state: dict = {}
    checks = [
        (f"(a) {TRAININGS} trainings spread over both hosts' workers", lambda: check_spread(stack, hosts, state)),
        (
            "(b) a host's worker killed mid-job: done once, by the other host",
            lambda: check_worker_killed(stack, hosts, state),
        ),
        (
            "(c) an alias move reaches both replicas within MDS_ALIAS_CHECK_INTERVAL + 1 s",
            lambda: check_alias_move(stack, hosts, state, check_interval),
        ),
    ]
    failures = 0
    for title, check in checks:
        started = time.monotonic()
        try:
            detail, passed = check(), True
        except CheckFailed as exc:
            detail, passed = str(exc), False
        except Exception as exc:  # a broken check is a failed check, reported like the others
            detail, passed = f"{type(exc).__name__}: {exc}", False
        failures += not passed
        print(f"[{'PASS' if passed else 'FAIL'}] {title} ({time.monotonic() - started:.0f} s)", flush=True)
        print(f"       {detail}", flush=True)
    return 1 if failures else 0


def pg_latency(url: str) -> str:
    """Median time to open a connection and to run ``SELECT 1`` on an open one."""
    connects, queries = [], []
    for _ in range(10):
        started = time.perf_counter()
        psycopg.connect(url).close()
        connects.append(time.perf_counter() - started)
    with psycopg.connect(url) as connection:
        for _ in range(200):
            started = time.perf_counter()
            connection.execute("SELECT 1").fetchone()
            queries.append(time.perf_counter() - started)
    return (
        f"connect p50 {statistics.median(connects) * 1000:.1f} ms, SELECT 1 p50 "
        f"{statistics.median(queries) * 1000:.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    checks = commands.add_parser("run")
    checks.add_argument("--host", action="append", required=True, help="HOSTNAME,NETNS,INFERENCE_URL")
    checks.add_argument("--alias-check-interval", type=float, default=1.0)
    batch = commands.add_parser("batch")
    batch.add_argument("--host", action="append", required=True, help="HOSTNAME,NETNS,INFERENCE_URL")
    batch.add_argument("--rows", type=int, default=BATCH_ROWS)
    latency = commands.add_parser("pg-latency")
    latency.add_argument("database_url")
    args = parser.parse_args()
    if args.command == "pg-latency":
        print(pg_latency(args.database_url))
        return 0
    hosts = [Host(*spec.split(",", 2)) for spec in args.host]
    if args.command == "batch":
        return run_batch(hosts, args.rows)
    return run(hosts, args.alias_check_interval)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
