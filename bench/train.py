"""Benchmark training at scale through the API of the running stack (`make stack`): 10k, 100k, 1M rows × 8 features.

For each row count it writes a deterministic CSV (a minute timestamp, 8 features, a nonlinear target with noise),
restarts the stack's web and worker processes (so their peak RSS is this run's) and warms them up with a 200-row
training, uploads the file to ``POST /train`` with the command-line client's streaming upload (``mds.client``),
follows the job to its registered version and measures:

    upload time (the file's last byte sent, and the 202 answer); end-to-end time from the first byte sent to a
    registered version; the Celery worker's peak RSS (VmHWM of its pool process, and the sampled peak of its
    whole process tree); the web server's RSS growth during the upload (its gunicorn workers, sampled every
    0.1 s, and their VmHWM before and after); the ONNX and pickle files' sizes (the version's artifacts in S3);
    the holdout R² the job reports; the R² of an unbounded forest fitted here on the newest 50 000 rows of the
    same training window and scored on the same holdout
    (``training.ml``'s chronological split); the 1-row ``/predict`` p50 latency on the inference server.

Each figure is printed beside its target (issue #9's targets are set for 1M rows; the smaller runs are held to
the same ceilings) and the run exits 1 if one is missed.

    make stack && .venv/bin/python bench/train.py [--rows 10000,100000,1000000] [--stack-env var/stack/stack.env]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mds.client import ApiClient  # noqa: E402

FEATURES = [f"x{i}" for i in range(1, 9)]
BASELINE_ROWS = 50_000
PREDICT_CALLS = 300
MB = 1024 * 1024
# (label, target, True if higher is better); None: reported, no target.
TARGETS = {
    "upload sent (s)": None,
    "upload answered (202, file stored) (s)": None,
    "end-to-end to a registered version (s)": (600.0, False),
    "worker peak RSS, pool process VmHWM (MB)": (4096.0, False),
    "worker peak RSS, process tree sampled (MB)": (4096.0, False),
    "web RSS growth during the upload (MB)": (150.0, False),
    "web VmHWM growth during the upload (MB)": (150.0, False),
    "ONNX size (MB)": (300.0, False),
    "pickle size (MB)": None,
    "holdout R2 minus unbounded baseline R2": (-0.01, True),
    "1-row /predict p50 (ms)": (10.0, False),
}


def make_csv(path: Path, rows: int, seed: int = 9) -> None:
    """Rows one minute apart; the target mixes sines, squares, products and a daily cycle, plus noise."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    with open(path, "w") as out:
        for offset in range(0, rows, 100_000):
            n = min(100_000, rows - offset)
            minute = np.arange(offset, offset + n)
            x = rng.normal(size=(n, 8))
            x[:, 0] = np.sin(2 * np.pi * minute / 1440) + 0.3 * x[:, 0]  # a daily cycle, seen through noise
            x[:, 3] = rng.uniform(0, 1, size=n)
            y = (
                3 * np.sin(2 * x[:, 1])
                + x[:, 2] ** 2
                + 2 * x[:, 3] * x[:, 4]
                + np.abs(x[:, 5])
                + 1.5 * np.tanh(x[:, 6]) * x[:, 7]
                + 2 * x[:, 0]
                + 0.5 * rng.normal(size=n)
            )
            frame = pd.DataFrame(x, columns=FEATURES)
            frame.insert(0, "timestamp", (start + pd.to_timedelta(minute, unit="min")).strftime("%Y-%m-%dT%H:%M"))
            frame["target"] = y
            frame.to_csv(out, index=False, header=offset == 0, float_format="%.5f")


# --- Processes of the stack -------------------------------------------------------------------------------------


def stack_sh(stack_dir: Path, *args: str) -> str:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), *args],
        env={**os.environ, "STACK_DIR": str(stack_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def stack_pids(stack_dir: Path) -> dict[str, int]:
    """Main pid of each running service, from supervisord (`scripts/stack.sh status`)."""
    pids = {}
    for line in stack_sh(stack_dir, "status").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING":
            pids[parts[0]] = int(parts[3].rstrip(","))
    return pids


def children(pid: int) -> list[int]:
    try:
        found = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
    return found + [grandchild for child in found for grandchild in children(child)]


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Samples the summed VmRSS of the web workers and of the worker's whole tree every ``period`` seconds."""

    def __init__(self, web_master: int, worker_main: int, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.web_master, self.worker_main, self.period = web_master, worker_main, period
        self.samples: list[tuple[float, int, int]] = []  # (time, web kB, worker kB)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            web = sum(status_kb(pid, "VmRSS") for pid in children(self.web_master))
            worker = sum(status_kb(pid, "VmRSS") for pid in [self.worker_main, *children(self.worker_main)])
            self.samples.append((time.monotonic(), web, worker))
            self.stopped.wait(self.period)

    def peak(self, column: int, start: float, end: float) -> int:
        return max((sample[column] for sample in self.samples if start <= sample[0] <= end), default=0)


# --- One run ------------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]

    @property
    def web(self) -> str:
        return self.env["MDS_STACK_WEB_URL"]

    @property
    def inference(self) -> str:
        return self.env["MDS_STACK_INFERENCE_URL"]

    @property
    def token(self) -> str:
        return self.env["MDS_STACK_TOKEN"]


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip().strip("'\"") for key, value in pairs}


def artifact_sizes(stack: Stack, model_name: str, version: int) -> dict[str, int]:
    """Sizes of the version's model.onnx and model.pkl in the artifacts bucket."""
    import boto3
    from botocore.config import Config

    env = stack.env
    answer = requests.get(
        f"{env['MDS_STACK_MLFLOW_URI']}/api/2.0/mlflow/model-versions/get",
        params={"name": model_name, "version": version},
        auth=(env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]),
        timeout=30,
    )
    answer.raise_for_status()
    model_id = answer.json()["model_version"]["source"].removeprefix("models:/")
    s3 = boto3.client(
        "s3",
        endpoint_url=env["MDS_STACK_S3_ENDPOINT"],
        aws_access_key_id=env["MDS_STACK_S3_ACCESS_KEY"],
        aws_secret_access_key=env["MDS_STACK_S3_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    sizes = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["MDS_STACK_ARTIFACTS_BUCKET"]):
        for item in page.get("Contents", []):
            if f"/{model_id}/artifacts/" in item["Key"]:
                sizes[item["Key"].rsplit("/", 1)[1]] = item["Size"]
    return sizes


def baseline_r2(path: Path, *, test_size: float, random_state: int) -> tuple[float, int]:
    """R² on the job's holdout of an unbounded forest fitted on the newest 50k rows of its training window."""
    from sklearn.metrics import r2_score

    from training import ml

    data = ml.prepare_data(pd.read_csv(path), target="target", timestamp="timestamp")
    split = ml.chronological_split(len(data.y), test_size)
    start = max(0, split - BASELINE_ROWS)
    params = ml.TrainingParams(n_estimators=100, max_depth=None, random_state=random_state)
    forest = ml.fit_random_forest(data.X[start:split], data.y[start:split], params)
    return float(r2_score(data.y[split:], forest.predict(data.X[split:]))), split - start


def predict_p50(stack: Stack, model_name: str, version: int, row_csv: str) -> float:
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {stack.token}", "Content-Type": "text/csv"})
    url = f"{stack.inference}/predict?model_name={model_name}&version={version}&format=onnx"
    # The first call loads the version (from MLflow) and is not a latency figure.
    first = session.post(url, data=row_csv, timeout=900)
    first.raise_for_status()
    times = []
    for _ in range(PREDICT_CALLS):
        began = time.perf_counter()
        session.post(url, data=row_csv, timeout=60).raise_for_status()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def warm_up(stack: Stack, work: Path) -> None:
    """One small training first, so that a fresh web worker's one-off costs (imports, the storage and broker
    clients) are not counted as the upload's growth."""
    path = work / "warm_up.csv"
    make_csv(path, 200)
    client = ApiClient(url=stack.web, token=stack.token, timeout=120)
    job = client.training_start(path=path, options={"model_name": "bench_warm_up", "n_estimators": "2"}, on_sent=id)
    while job["status"] not in ("success", "failed", "cancelled"):
        time.sleep(0.5)
        job = client.job_get(job_id=job["id"])
    assert job["status"] == "success", job


def run_one(stack: Stack, stack_dir: Path, rows: int, work: Path) -> dict[str, float]:
    path = work / f"bench_{rows}.csv"
    began = time.monotonic()
    make_csv(path, rows)
    print(f"\n== {rows} rows: {path.stat().st_size / MB:.1f} MB CSV written in {time.monotonic() - began:.1f}s")

    # Fresh web and worker processes: their VmHWM (peak RSS) is then this run's, not an earlier job's.
    stack_sh(stack_dir, "stop", "web", "worker")
    stack_sh(stack_dir, "start", "web", "worker")
    pids = stack_pids(stack_dir)
    web_workers = children(pids["web"])
    pool = children(pids["worker"])
    hwm_before = {pid: status_kb(pid, "VmHWM") for pid in web_workers}
    warm_up(stack, work)
    sampler = MemorySampler(pids["web"], pids["worker"])
    sampler.start()
    time.sleep(1.0)
    web_before = statistics.median(s[1] for s in sampler.samples)

    model_name = f"bench_train_{rows}"
    client = ApiClient(url=stack.web, token=stack.token, timeout=120)
    file_size = path.stat().st_size
    sent = 0
    upload_end = 0.0

    def on_sent(n: int) -> None:
        nonlocal sent, upload_end
        sent += n
        if sent >= file_size and not upload_end:
            upload_end = time.monotonic()

    start = time.monotonic()
    job = client.training_start(path=path, options={"model_name": model_name}, on_sent=on_sent, wait=600)
    answered = time.monotonic()
    upload_end = upload_end or answered
    web_hwm_growth = max((status_kb(pid, "VmHWM") - kb for pid, kb in hwm_before.items()), default=0)
    print(f"job {job['id']} accepted ({job['status']}); polling")
    while job["status"] not in ("success", "failed", "cancelled"):
        time.sleep(0.5)
        job = client.job_get(job_id=job["id"])
    done = time.monotonic()
    sampler.stopped.set()
    sampler.join()
    if job["status"] != "success":
        raise SystemExit(f"job {job['id']} {job['status']}: {job.get('error')}")
    pool_hwm = max((status_kb(pid, "VmHWM") for pid in children(pids["worker"])), default=0)
    if children(pids["worker"]) != pool:
        print("  (the worker's pool process changed during the job)")
    version = job["registered_version"]
    print(f"job {job['id']} success: version {version} of {model_name}, r2 {job['metrics']['r2']:.4f}")

    sizes = artifact_sizes(stack, model_name, version)
    baseline, baseline_rows = baseline_r2(path, test_size=job["params"]["test_size"], random_state=42)
    print(f"baseline: unbounded forest on the newest {baseline_rows} training rows, R2 {baseline:.4f}")
    row = pd.read_csv(path, nrows=1)[FEATURES].to_csv(index=False, float_format="%.5f")
    p50 = predict_p50(stack, model_name, version, row)
    return {
        "upload sent (s)": upload_end - start,
        "upload answered (202, file stored) (s)": answered - start,
        "end-to-end to a registered version (s)": done - start,
        "worker peak RSS, pool process VmHWM (MB)": pool_hwm / 1024,
        "worker peak RSS, process tree sampled (MB)": sampler.peak(2, start, done) / 1024,
        "web RSS growth during the upload (MB)": (sampler.peak(1, start, answered) - web_before) / 1024,
        "web VmHWM growth during the upload (MB)": web_hwm_growth / 1024,
        "ONNX size (MB)": sizes.get("model.onnx", 0) / MB,
        "pickle size (MB)": sizes.get("model.pkl", 0) / MB,
        "holdout R2": job["metrics"]["r2"],
        "unbounded baseline R2 (newest 50k training rows)": baseline,
        "holdout R2 minus unbounded baseline R2": job["metrics"]["r2"] - baseline,
        "1-row /predict p50 (ms)": p50,
    }


def report(rows: int, figures: dict[str, float]) -> int:
    print(f"\n{rows} rows{'':<44}{'value':>12}  {'target':>10}  ok")
    missed = 0
    for name, value in figures.items():
        target = TARGETS.get(name)
        if target is None:
            print(f"  {name:<50}{value:>12.4f}")
            continue
        limit, higher = target
        ok = value >= limit if higher else value <= limit
        missed += not ok
        print(f"  {name:<50}{value:>12.4f}  {'>=' if higher else '<='}{limit:>8g}  {'yes' if ok else 'NO'}")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000,1000000", help="comma-separated row counts")
    parser.add_argument("--stack-env", type=Path, default=ROOT / "var" / "stack" / "stack.env")
    args = parser.parse_args()
    stack = Stack(read_env(args.stack_env))
    stack_dir = Path(stack.env["MDS_STACK_DIR"])
    missed = 0
    with tempfile.TemporaryDirectory(prefix="mds-bench-train-") as work:
        for rows in (int(value) for value in args.rows.split(",")):
            missed += report(rows, run_one(stack, stack_dir, rows, Path(work)))
    print(f"\n{'all targets met' if not missed else f'{missed} target(s) missed'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
