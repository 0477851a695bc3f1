"""Benchmark batch scoring (``mds score`` -> ``POST /batch``) against ``mlflow models predict`` on the same file.

Trains the ``bench/predict.py`` forest (100 full-depth trees, 8 features, 12 000 rows) into an embedded store
(SQLite and an artifact directory), writes a CSV of ``--rows`` rows x 8 features (default 10 million, ~0.8 GB),
then, side by side in one run:

    baseline  ``mlflow models predict -m models:/rf_bench/V -i in.csv -o out.csv -t csv --env-manager local``:
              wall time and the peak RSS of its process tree (``/proc`` sampled every 0.1 s).
    embedded  MDS as ``make run`` serves it (gunicorn, local settings, the same store, scoring in-process):
              ``mds score`` end to end (upload, scoring, result downloaded) and the server's process tree's RSS
              growth over its idle RSS before the upload (sampled).
    stack     with ``--stack``, the running stack of ``make stack`` (``$STACK_DIR/stack.env``, default
              ``var/stack``): the same forest trained there through ``POST /train``, the same file through
              ``mds score``, and the RSS growth of the web and worker process trees.

Each MDS run's result is checked: exactly ``--rows`` rows, and the predictions of ``--sample`` random rows equal to
``/predict``'s answer for the same rows and version (the server's default engine for both).

Targets: MDS rows/s >= 1.5x mlflow's; the scoring processes growing by <= 1 GB; predictions equal to /predict's.
Exits 1 if a target is missed.

    .venv/bin/python bench/batch.py [--rows 10000000] [--stack] [--stack-dir var/stack] [--sample 1000]
                                    [--port-base 18100] [--keep]
"""

import argparse
import csv
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import FEATURES, MODEL_NAME, ROOT, prepare, stop  # noqa: E402

SPEEDUP_TARGET = 1.5
GROWTH_TARGET_MB = 1024
# A prediction as the result file writes it and as /predict's JSON answers it: both are the same float64 written
# in decimal; this only absorbs a shortest-repr vs fixed-digits difference in the last place.
EQUAL_RELATIVE = 1e-9
BLOCK_ROWS = 500_000


class TreeSampler:
    """The summed RSS of a process tree (or several), sampled every ``period`` seconds on a thread: its peak."""

    def __init__(self, pids: list[int], period: float = 0.1) -> None:
        self.pids, self.period = pids, period
        self.peak_mb = self.first_mb = tree_rss_mb(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pids))


def tree_rss_mb(roots: list[int]) -> float:
    """Summed VmRSS of ``roots`` and all their descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo, seen = 0, list(roots), set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


def write_input(path: Path, train_csv: Path, rows: int) -> None:
    """``rows`` rows of the 8 features, each value drawn from that feature's training values plus a little noise
    (so the trees see realistic inputs), written block by block: never the whole file in memory."""
    import pandas as pd

    frame = pd.read_csv(train_csv, usecols=FEATURES)
    values = frame[FEATURES].to_numpy()
    spread = values.std(axis=0) * 0.05
    rng = np.random.default_rng(7)
    with open(path, "w") as out:
        out.write(",".join(FEATURES) + "\n")
        for start in range(0, rows, BLOCK_ROWS):
            n = min(BLOCK_ROWS, rows - start)
            picked = values[rng.integers(len(values), size=(n, len(FEATURES))), np.arange(len(FEATURES))]
            block = pd.DataFrame(np.round(picked + rng.normal(size=picked.shape) * spread, 3), columns=FEATURES)
            # Written as 3.0, not 3: the version's signature says double, and `mlflow models predict` refuses
            # a column of integers for it ("Can not safely convert int64 to float64").
            block["day_of_week"] = block["day_of_week"].round().clip(0, 6)
            block.to_csv(out, index=False, header=False)


def run_baseline(env: dict, version: int, input_csv: Path, out_csv: Path) -> dict:
    cmd = ["mlflow", "models", "predict", "-m", f"models:/{MODEL_NAME}/{version}", "-i", str(input_csv)]
    cmd += ["-o", str(out_csv), "-t", "csv", "--env-manager", "local"]
    started = time.monotonic()
    process = subprocess.Popen(cmd, cwd=input_csv.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with TreeSampler([process.pid]) as sampler:
        _, err = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(f"mlflow models predict failed:\n{err.decode()[-2000:]}")
    return {"seconds": seconds, "peak_mb": sampler.peak_mb}


def run_mds(url: str, token: str, version: int, input_csv: Path, out_csv: Path, pids: list[int]) -> dict:
    """``mds score`` end to end, as a user runs it; the sampled RSS of ``pids``' trees over their idle RSS."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "MDS_URL": url, "MDS_TOKEN": token}
    cmd = [sys.executable, "-m", "mds", "score", str(input_csv), "--model-name", MODEL_NAME]
    cmd += ["--version", str(version), "-o", str(out_csv), "--poll", "0.5", "--json"]
    idle = tree_rss_mb(pids)
    started = time.monotonic()
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(pids) as servers, TreeSampler([process.pid]) as client:
        out, err = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(f"mds score failed ({process.returncode}):\n{err[-3000:]}\n{out[-2000:]}")
    return {
        "seconds": seconds,
        "idle_mb": idle,
        "peak_mb": servers.peak_mb,
        "growth_mb": servers.peak_mb - idle,
        "client_peak_mb": client.peak_mb,
    }


def check_result(url: str, token: str, version: int, input_csv: Path, out_csv: Path, rows: int, sample: int) -> dict:
    """Rows in the result, and the largest relative difference to /predict on ``sample`` random rows."""
    wanted = sorted(random.Random(3).sample(range(rows), min(sample, rows)))
    inputs = _lines_at(input_csv, wanted)
    header = input_csv.open().readline()
    # The batch job scored with the pickle loaded (a job's chunks wait for it); a web process that had not loaded
    # the version before answers with ONNX until its pickle is in (float32 sums: ~1e-7 apart). Compare like with
    # like: ask again until the server's default engine is the pickle's.
    deadline = time.monotonic() + 180
    while True:
        answer = requests.post(
            f"{url}/predict",
            params={"model_name": MODEL_NAME, "version": version},
            data=header + "".join(inputs),
            headers={"Content-Type": "text/csv", "Authorization": f"Token {token}"},
            timeout=300,
        )
        answer.raise_for_status()
        if answer.headers.get("X-Model-Format") != "onnx" or time.monotonic() > deadline:
            break
        time.sleep(1)
    expected = [float(value) for value in answer.json()["predictions"]]
    got, counted = [], 0
    wanted_set = set(wanted)
    with out_csv.open(newline="") as result:
        reader = csv.reader(result)
        column = next(reader).index("prediction")
        for number, row in enumerate(reader):
            counted += 1
            if number in wanted_set:
                got.append(float(row[column]))
    differences = [abs(a - b) / max(1.0, abs(b)) for a, b in zip(got, expected, strict=False)]
    return {
        "rows": counted,
        "sampled": len(expected),
        "max_relative_difference": max(differences, default=math.inf) if len(got) == len(expected) else math.inf,
        "engine": answer.headers.get("X-Model-Format", "?"),
    }


def _lines_at(path: Path, numbers: list[int]) -> list[str]:
    """The data lines (0-based, header excluded) at ``numbers``, read in one pass."""
    wanted, found = set(numbers), []
    with path.open() as lines:
        next(lines)
        for number, line in enumerate(lines):
            if number in wanted:
                found.append(line)
                if len(found) == len(wanted):
                    break
    return found


def start_embedded(env: dict, port: int, log: Path) -> tuple[subprocess.Popen, str]:
    """gunicorn as ``scripts/run.sh`` starts it (``make run``), on the bench's store and port."""
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mds_project.wsgi", "--config", "gunicorn.conf.py"],
        cwd=ROOT,
        env={**env, "PORT": str(port), "GUNICORN_ACCESSLOG": ""},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if requests.get(f"{url}/health", timeout=10).ok:
                    return server, url
            except (requests.ConnectionError, requests.Timeout):
                # The first request waits for the worker's start (Django, the apps).
                pass
            time.sleep(0.25)
    except BaseException:
        stop(server)
        raise
    stop(server)
    sys.exit(f"the embedded server did not start; see {log}")


def stack_prepare(stack_dir: Path, train_csv: Path) -> tuple[str, str, int, list[int]]:
    """The stack's URL and token, the forest trained there (as ``predict.py`` trains it), the web and worker pids."""
    settings = {}
    for line in (stack_dir / "stack.env").read_text().splitlines():
        name, _, value = line.partition("=")
        settings[name.strip().removeprefix("export ")] = value.strip().strip("'\"")
    url, token = settings["MDS_STACK_WEB_URL"], settings["MDS_STACK_TOKEN"]
    headers = {"Authorization": f"Token {token}"}
    with train_csv.open("rb") as file:
        answer = requests.post(
            f"{url}/train",
            params={"model_name": MODEL_NAME, "n_estimators": 100, "backtest": 0},
            files={"file": ("train.csv", file)},
            headers=headers,
            timeout=300,
        )
    answer.raise_for_status()
    job_id = answer.json()["id"]
    deadline = time.monotonic() + 1800
    while (job := requests.get(f"{url}/train/{job_id}", headers=headers, timeout=30).json())["status"] not in (
        "success",
        "failed",
        "cancelled",
    ):
        if time.monotonic() > deadline:
            sys.exit(f"training job {job_id} on the stack did not finish")
        time.sleep(2)
    if job["status"] != "success":
        sys.exit(f"training job {job_id} on the stack ended {job['status']}: {job.get('error')}")
    pids = []
    for service in ("web", "worker"):
        pid = subprocess.run(
            ["bash", "scripts/stack.sh", "pid", service],
            cwd=ROOT,
            env={**os.environ, "STACK_DIR": str(stack_dir)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        pids.append(int(pid))
    return url, token, job["registered_version"], pids


def report(rows: int, input_bytes: int, baseline: dict, runs: dict[str, tuple[dict, dict]]) -> int:
    base_rate = rows / baseline["seconds"]
    print(f"\n{rows:,} rows x {len(FEATURES)} features, {input_bytes / 1e6:.1f} MB of CSV")
    print(f"{'':<62}{'value':>12}{'target':>16}  ok")
    print(f"{'mlflow models predict: time (s)':<62}{baseline['seconds']:>12.2f}")
    print(f"{'mlflow models predict: rows/s':<62}{base_rate:>12.0f}")
    print(f"{'mlflow models predict: peak RSS, tree (MB)':<62}{baseline['peak_mb']:>12.0f}")
    missed = 0

    def line(label: str, value: float, target: str = "", ok: bool | None = None, fmt: str = ".2f") -> None:
        nonlocal missed
        missed += ok is False
        verdict = "" if ok is None else "yes" if ok else "NO"
        print(f"{label:<62}{value:>12{fmt}}{target:>16}  {verdict}")

    for name, (run, check) in runs.items():
        rate = rows / run["seconds"]
        line(f"{name}: end to end (s)", run["seconds"])
        line(f"{name}: rows/s", rate, fmt=".0f")
        line(f"{name}: rows/s over mlflow's", rate / base_rate, f">= {SPEEDUP_TARGET}", rate / base_rate >= 1.5)
        line(f"{name}: scoring processes idle RSS (MB)", run["idle_mb"], fmt=".0f")
        line(f"{name}: scoring processes peak RSS (MB)", run["peak_mb"], fmt=".0f")
        line(
            f"{name}: their growth (MB)",
            run["growth_mb"],
            f"<= {GROWTH_TARGET_MB}",
            run["growth_mb"] <= GROWTH_TARGET_MB,
            ".0f",
        )
        line(f"{name}: mds client peak RSS (MB)", run["client_peak_mb"], fmt=".0f")
        line(f"{name}: result rows", check["rows"], f"== {rows:,}", check["rows"] == rows, ".0f")
        line(
            f"{name}: max rel. diff to /predict ({check['sampled']} rows, {check['engine']})",
            check["max_relative_difference"],
            f"<= {EQUAL_RELATIVE:g}",
            check["max_relative_difference"] <= EQUAL_RELATIVE,
            ".2g",
        )
    print(f"\n{'all targets met' if not missed else f'{missed} target(s) missed'}")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the file to score")
    parser.add_argument("--days", type=int, default=12000, help="rows of training data (one per day)")
    parser.add_argument("--sample", type=int, default=1000, help="rows checked against /predict")
    parser.add_argument("--stack", action="store_true", help="also score on the running stack")
    parser.add_argument("--stack-dir", type=Path, default=ROOT / "var" / "stack", help="the stack's STACK_DIR")
    parser.add_argument("--port-base", type=int, default=18100, help="the embedded server listens on this + 1")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="mds-bench-batch-"))
    (data_dir / "tmp").mkdir()
    (data_dir / "mlflow").mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "DATABASE_URL")} | {
        "MDS_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "mds_project.settings.local",
        "DJANGO_DEBUG": "false",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TMPDIR": str(data_dir / "tmp"),
    }
    server = None
    try:
        version, token, _ = prepare(data_dir, env, args.days)
        input_csv = data_dir / "in.csv"
        started = time.monotonic()
        write_input(input_csv, data_dir / "train.csv", args.rows)
        size = input_csv.stat().st_size
        print(f"wrote {args.rows:,} rows ({size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")

        baseline_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{data_dir}/mlflow/mlflow.db"}
        baseline = run_baseline(baseline_env, version, input_csv, data_dir / "mlflow-out.csv")
        print(f"mlflow models predict: {baseline['seconds']:.1f} s, peak {baseline['peak_mb']:.0f} MB")
        (data_dir / "mlflow-out.csv").unlink(missing_ok=True)

        runs = {}
        server, url = start_embedded(env, args.port_base + 1, data_dir / "embedded.log")
        out_csv = data_dir / "embedded-out.csv"
        run = run_mds(url, token, version, input_csv, out_csv, [server.pid])
        runs["embedded"] = (run, check_result(url, token, version, input_csv, out_csv, args.rows, args.sample))
        print(f"embedded: {run['seconds']:.1f} s, growth {run['growth_mb']:.0f} MB")
        out_csv.unlink()
        stop(server)
        server = None

        if args.stack:
            url, token, version, pids = stack_prepare(args.stack_dir, data_dir / "train.csv")
            out_csv = data_dir / "stack-out.csv"
            run = run_mds(url, token, version, input_csv, out_csv, pids)
            runs["stack"] = (run, check_result(url, token, version, input_csv, out_csv, args.rows, args.sample))
            print(f"stack: {run['seconds']:.1f} s, growth {run['growth_mb']:.0f} MB")
            out_csv.unlink()
        return report(args.rows, size, baseline, runs)
    finally:
        if server is not None:
            stop(server)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
