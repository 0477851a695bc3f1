"""Benchmark /predict against `mlflow models serve` on the same registered version, with the same load.

Starts an MLflow tracking server (SQLite + artifact proxy, as in production) in a temporary directory,
registers a random forest (100 full-depth trees, 8 features) through the product's training service, then
starts both model servers cold, one after the other, on the same version and drives each with wrk:

    1-row CSV latency (1 connection), 1-row throughput (8 connections), 10k-row batches (rows/s, 1 and 2
    connections), cold start to first prediction, and the RSS of each server's whole process tree after the load.

The 1-row latency and throughput are measured with both of MDS's bodies side by side: ``text/csv`` and the
multipart upload the README's quick start teaches (``curl -F file=@rows.csv``, the same bytes curl sends), each
against ``mlflow models serve`` with ``text/csv`` (it takes no multipart body).

MDS gets no ``format``: the server picks the engine per request, as for any client (the engine it named is
printed). Cold start is measured twice: against the tracking server (as the stack runs) and, unless
``--no-embedded``, on an embedded store (a second version trained into a local SQLite store and artifact
directory, which both servers then read in-process).

Then, on MDS alone, the time ``interval=0.9`` adds to a 10k-row batch: the same batch with and without it, request
after request, 20 pairs per round, and the median of the pairs' time ratios (target: at most 10 % more).

Prints a table and the ratios, and exits 1 if a target is missed. Needs `wrk` (`apt-get install wrk`).

    .venv/bin/python bench/predict.py [--days 12000] [--duration 8] [--rounds 5] [--port-base 18000] [--keep]
                                      [--log-overhead] [--no-embedded]

Servers listen on ``--port-base`` + 1..6. MDS runs with its prediction log on (the default). ``--log-overhead``
also starts a second MDS server with the log off (``MDS_PREDICTION_LOG=false``), measures it in the same
alternating rounds, and checks that the log adds at most 0.2 ms to the 1-row p50 latency.

Each metric is measured ``--rounds`` times, alternating between the servers, and the median is kept.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# Set from --port-base in main().
MLFLOW_PORT = MDS_PORT = TRACKING_PORT = MDS_NO_LOG_PORT = EMBEDDED_MLFLOW_PORT = EMBEDDED_MDS_PORT = 0
# The most the prediction log may add to the 1-row p50 latency (ms).
LOG_OVERHEAD_TARGET_MS = 0.2
# MDS alone: extra time per 10k-row batch with prediction intervals (interval=0.9), at most this share.
INTERVAL_OVERHEAD_TARGET = 0.10
MODEL_NAME = "rf_bench"
FEATURES = [
    "temperature_c",
    "humidity_pct",
    "wind_speed_ms",
    "pressure_hpa",
    "cloud_cover_pct",
    "precipitation_mm",
    "solar_radiation_kwh_m2",
    "day_of_week",
]
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Token " .. token end
local f = io.open(os.getenv("BENCH_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
"""
# (metric, target ratio MDS/mlflow, True if higher is better)
TARGETS = {
    "1-row p50 latency (ms)": (0.04, False),
    "1-row p50 latency, multipart upload (ms)": (0.04, False),
    "1-row throughput, 8 connections (req/s)": (25.0, True),
    "1-row throughput, 8 connections, multipart upload (req/s)": (25.0, True),
    "10k-row batches, 1 connection (rows/s)": (1.5, True),
    "10k-row batches, 2 connections (rows/s)": (1.5, True),
    "cold start to first prediction (s)": (0.5, False),
    "cold start, embedded store (s)": (0.5, False),
    "RSS after the load (MB)": (1.0, False),
}
# What curl -F sends: its boundary style, the file's part headers, CRLF line ends around the parts.
UPLOAD_BOUNDARY = "------------------------d74496d66958873e"
UPLOAD_CONTENT_TYPE = f"multipart/form-data; boundary={UPLOAD_BOUNDARY}"
TRAIN_SNIPPET = """
import io, os
from django.contrib.auth import get_user_model
from training import ml, services
raw = open(os.environ["BENCH_TRAIN_CSV"], "rb").read()
user, _ = get_user_model().objects.get_or_create(username="bench")
job = services.training_job_start(file=io.BytesIO(raw), file_name="weather.csv", user=user,
    model_name=os.environ["BENCH_MODEL_NAME"], target="target", timestamp="timestamp",
    params=ml.TrainingParams(n_estimators=100, max_depth=None))
job = services.training_job_wait(job_id=job.pk, timeout=900)
assert job.registered_version, (job.status, job.error_message)
print(job.registered_version)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12000, help="rows of training data (one per day)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating measurements per metric (median kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--log-overhead", action="store_true", help="also measure MDS with its prediction log off")
    parser.add_argument("--no-embedded", action="store_true", help="skip the cold starts on an embedded store")
    parser.add_argument("--port-base", type=int, default=18000, help="servers listen on this + 1..6")
    args = parser.parse_args()
    global MLFLOW_PORT, MDS_PORT, TRACKING_PORT, MDS_NO_LOG_PORT, EMBEDDED_MLFLOW_PORT, EMBEDDED_MDS_PORT
    MLFLOW_PORT, MDS_PORT, TRACKING_PORT, MDS_NO_LOG_PORT, EMBEDDED_MLFLOW_PORT, EMBEDDED_MDS_PORT = (
        args.port_base + offset for offset in range(1, 7)
    )
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")

    data_dir = Path(tempfile.mkdtemp(prefix="mds-bench-"))
    env = {
        **os.environ,
        "MDS_DATA_DIR": str(data_dir),
        # The embedded settings against an MLflow server, without DEBUG's per-request bookkeeping.
        "DJANGO_SETTINGS_MODULE": "mds_project.settings.local",
        "DJANGO_DEBUG": "false",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TMPDIR": str(data_dir / "tmp"),
    }
    (data_dir / "tmp").mkdir()
    (data_dir / "mlflow").mkdir()
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{TRACKING_PORT}"
    servers: list[subprocess.Popen] = []
    tracking = None
    try:
        tracking = start_tracking_server(data_dir, env)
        version, token, bodies = prepare(data_dir, env, args.days)
        mlflow_cmd = ["mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/{version}", "--env-manager", "local"]
        mlflow_cmd += ["--host", "127.0.0.1", "--port", str(MLFLOW_PORT)]
        mlflow_url = f"http://127.0.0.1:{MLFLOW_PORT}/invocations"
        mds_url = f"http://127.0.0.1:{MDS_PORT}/predict?model_name={MODEL_NAME}&version={version}"
        # The production command from README.md, on a bench port.
        mds_cmd = [sys.executable, "-m", "mds_project.inference_server", "--bind", f"127.0.0.1:{MDS_PORT}"]
        mds_env = {**env, "INFERENCE_ACCESSLOG": "false"}

        targets = {
            "mlflow serve": {"cmd": mlflow_cmd, "env": env, "one": mlflow_url, "batch": mlflow_url, "auth": ""},
            # The server's defaults: no format, so the server picks the engine per request.
            "MDS": {
                "cmd": mds_cmd,
                "env": mds_env,
                "one": mds_url,
                "batch": mds_url,
                "batch_interval": mds_url + "&interval=0.9",
                "auth": token,
                "uploads": True,
            },
        }
        if args.log_overhead:
            no_log_url = f"http://127.0.0.1:{MDS_NO_LOG_PORT}/predict?model_name={MODEL_NAME}&version={version}"
            targets["MDS, log off"] = {
                "cmd": [*mds_cmd[:-1], f"127.0.0.1:{MDS_NO_LOG_PORT}"],
                "env": {**mds_env, "MDS_PREDICTION_LOG": "false"},
                "one": no_log_url,
                "batch": no_log_url,
                "auth": token,
                "uploads": True,
            }
        samples = {label: {metric: [] for metric in TARGETS} for label in targets}

        def log_path(label: str, round_: int | str) -> Path:
            return data_dir / f"{re.sub(r'[^a-z]+', '-', label.lower())}-{round_}.log"

        # Every measurement alternates between the servers, `rounds` times, and keeps the median: the machine
        # is shared, and noise should not favour whichever server happened to run in a quiet moment.
        for round_ in range(args.rounds):
            for label, target in targets.items():
                server, cold = start_cold(
                    target["cmd"], target["env"], target["one"], target["auth"], bodies["one"], log_path(label, round_)
                )
                samples[label]["cold start to first prediction (s)"].append(cold)
                stop(server)
        if not args.no_embedded:
            embedded_cold_starts(data_dir, env, mds_env, bodies, args.days, args.rounds, samples)
        # Each cold start above ran alone: an idle `mlflow models serve` left running beside MDS made MDS's first
        # ONNX session take 1.4-2x as long (measured on a 2-vCPU machine). The load runs on servers started again.
        for label, target in targets.items():
            server, _ = start_cold(
                target["cmd"], target["env"], target["one"], target["auth"], bodies["one"], log_path(label, "load")
            )
            servers.append(server)
        for label, target in targets.items():
            warm(target["one"], target["auth"], bodies["one"], 50)
            warm(target["batch"], target["auth"], bodies["batch"], 3)
            if target["auth"]:
                # The default engine answers with ONNX until the sklearn model has loaded in the background.
                deadline = time.monotonic() + 60
                while engine(target["batch"], target["auth"], bodies["batch"]) != "sklearn":
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                print(
                    f"{label}: engine for 1 row {engine(target['one'], target['auth'], bodies['one'])},"
                    f" for 10k rows {engine(target['batch'], target['auth'], bodies['batch'])}"
                )
        phases = (
            ("1-row p50 latency (ms)", "one", 1, lambda out: out["p50_ms"]),
            ("1-row p50 latency, multipart upload (ms)", "upload", 1, lambda out: out["p50_ms"]),
            ("1-row throughput, 8 connections (req/s)", "one", 8, lambda out: out["rps"]),
            ("1-row throughput, 8 connections, multipart upload (req/s)", "upload", 8, lambda out: out["rps"]),
            ("10k-row batches, 1 connection (rows/s)", "batch", 1, lambda out: out["rps"] * 10_000),
            ("10k-row batches, 2 connections (rows/s)", "batch", 2, lambda out: out["rps"] * 10_000),
        )
        for metric, body, connections, value in phases:
            for _ in range(args.rounds):
                for label, target in targets.items():
                    # A server without multipart uploads (mlflow serve) answers the same rows as text/csv.
                    upload = body == "upload" and target.get("uploads")
                    out = wrk(
                        target["one" if body == "upload" else body],
                        target["auth"],
                        bodies["upload" if upload else "one" if body == "upload" else body],
                        connections=connections,
                        duration=args.duration,
                        content_type=UPLOAD_CONTENT_TYPE if upload else "text/csv",
                    )
                    samples[label][metric].append(value(out))
        results = {
            label: {metric: statistics.median(values) for metric, values in by_metric.items() if values}
            for label, by_metric in samples.items()
        }
        for label, by_metric in samples.items():
            for metric, values in by_metric.items():
                if values:
                    print(f"{label:<13}{metric:<58}" + " ".join(f"{v:.2f}" for v in values))
        # Interval overhead: the same batch with and without interval=0.9, request after request (in turns, so
        # neither always goes first), and the median of the pairs' time ratios: load from other work on a shared
        # machine drifts over seconds, and a pair of consecutive requests sees the same load.
        mds = targets["MDS"]
        warm(mds["batch_interval"], mds["auth"], bodies["batch"], 3)
        ratios = paired_time_ratios(
            mds["batch"], mds["batch_interval"], mds["auth"], bodies["batch"], 20 * args.rounds
        )
        for label, server in zip(targets, servers, strict=True):
            results[label]["RSS after the load (MB)"] = tree_rss_mb(server.pid)
        missed = report(results)
        if args.log_overhead:
            missed |= report_log_overhead(samples)
        missed |= report_interval_overhead(ratios, interval_method(mds, bodies["one"]))
        return missed
    finally:
        for server in [*servers, *([tracking] if tracking else [])]:
            stop(server)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def start_tracking_server(data_dir: Path, env: dict) -> subprocess.Popen:
    host = f"127.0.0.1:{TRACKING_PORT}"
    cmd = ["mlflow", "server", "--backend-store-uri", f"sqlite:///{data_dir}/mlflow/mlflow.db"]
    cmd += ["--artifacts-destination", (data_dir / "mlflow" / "artifacts").as_uri(), "--serve-artifacts"]
    cmd += ["--host", "127.0.0.1", "--port", str(TRACKING_PORT), "--workers", "1", "--allowed-hosts", host]
    log = data_dir / "tracking.log"
    server = subprocess.Popen(
        cmd,
        cwd=data_dir,
        env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if requests.get(f"http://{host}/health", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    stop(server)
    sys.exit(f"the MLflow tracking server did not start; see {log}")


def embedded_cold_starts(
    data_dir: Path, env: dict, mds_env: dict, bodies: dict[str, Path], days: int, rounds: int, samples: dict
) -> None:
    """Cold starts on an embedded store: a version trained into a local SQLite store and artifact directory (no
    tracking server), which ``mlflow models serve`` and MDS then each read in-process, in alternating rounds."""
    home = data_dir / "embedded"
    (home / "tmp").mkdir(parents=True)
    (home / "mlflow").mkdir()
    store = {"MDS_DATA_DIR": str(home), "TMPDIR": str(home / "tmp")}
    local = {key: value for key, value in {**env, **store}.items() if key != "MLFLOW_TRACKING_URI"}
    version, token, _ = prepare(home, local, days)
    tracking_uri = f"sqlite:///{home}/mlflow/mlflow.db"
    mlflow_cmd = ["mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/{version}", "--env-manager", "local"]
    mlflow_cmd += ["--host", "127.0.0.1", "--port", str(EMBEDDED_MLFLOW_PORT)]
    mds_cmd = [sys.executable, "-m", "mds_project.inference_server", "--bind", f"127.0.0.1:{EMBEDDED_MDS_PORT}"]
    mds_url = f"http://127.0.0.1:{EMBEDDED_MDS_PORT}/predict?model_name={MODEL_NAME}&version={version}"
    servers = {
        "mlflow serve": (
            mlflow_cmd,
            {**local, "MLFLOW_TRACKING_URI": tracking_uri},
            f"http://127.0.0.1:{EMBEDDED_MLFLOW_PORT}/invocations",
            "",
        ),
        "MDS": (
            mds_cmd,
            {key: value for key, value in {**mds_env, **store}.items() if key != "MLFLOW_TRACKING_URI"},
            mds_url,
            token,
        ),
    }
    for round_ in range(rounds):
        for label, (cmd, server_env, url, auth) in servers.items():
            log = home / f"{re.sub(r'[^a-z]+', '-', label.lower())}-{round_}.log"
            server, cold = start_cold(cmd, server_env, url, auth, bodies["one"], log)
            samples[label]["cold start, embedded store (s)"].append(cold)
            stop(server)


def engine(url: str, token: str, body: Path) -> str:
    """The engine MDS named for this request (``X-Model-Format``)."""
    headers = {"Content-Type": "text/csv", "Authorization": f"Token {token}"}
    return requests.post(url, data=body.read_bytes(), headers=headers, timeout=120).headers["X-Model-Format"]


def prepare(data_dir: Path, env: dict, days: int) -> tuple[int, str, dict[str, Path]]:
    """Migrate, register one version through the training service, issue a token, write the request bodies."""
    sys.path.insert(0, str(ROOT))
    from sample_data.make_weather import make_weather

    frame = make_weather(days=days, seed=11)
    train_csv = data_dir / "train.csv"
    frame.to_csv(train_csv, index=False)
    bodies = {"one": data_dir / "one.csv", "batch": data_dir / "batch.csv", "upload": data_dir / "one.multipart"}
    frame[FEATURES].iloc[:1].to_csv(bodies["one"], index=False)
    frame[FEATURES].iloc[:10_000].to_csv(bodies["batch"], index=False)
    bodies["upload"].write_bytes(
        f"--{UPLOAD_BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="one.csv"\r\nContent-Type: text/csv\r\n\r\n'
        + bodies["one"].read_bytes()
        + f"\r\n--{UPLOAD_BOUNDARY}--\r\n".encode()
    )

    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    started = time.monotonic()
    out = subprocess.run(
        [*manage, "shell", "-c", TRAIN_SNIPPET],
        cwd=ROOT,
        env={**env, "BENCH_TRAIN_CSV": str(train_csv), "BENCH_MODEL_NAME": MODEL_NAME},
        check=True,
        capture_output=True,
        text=True,
    )
    version = int(out.stdout.strip().splitlines()[-1])
    print(f"registered {MODEL_NAME} version {version} ({days} rows) in {time.monotonic() - started:.0f} s")
    token = subprocess.run(
        [*manage, "issue_token", "bench", "--role", "predictor"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return version, token, bodies


def start_cold(cmd, env, url, token, body: Path, log: Path) -> tuple[subprocess.Popen, float]:
    """Start a server and return it with the seconds until it answered its first prediction."""
    headers = {"Content-Type": "text/csv", **({"Authorization": f"Token {token}"} if token else {})}
    payload = body.read_bytes()
    started = time.monotonic()
    server = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    while time.monotonic() - started < 180:
        try:
            if requests.post(url, data=payload, headers=headers, timeout=60).status_code == 200:
                return server, time.monotonic() - started
        except requests.ConnectionError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.02)
    stop(server)
    sys.exit(f"{cmd[0]} gave no prediction; see {log}")


def warm(url: str, token: str, body: Path, count: int) -> None:
    headers = {"Content-Type": "text/csv", **({"Authorization": f"Token {token}"} if token else {})}
    payload = body.read_bytes()
    with requests.Session() as session:
        for _ in range(count):
            response = session.post(url, data=payload, headers=headers, timeout=120)
            response.raise_for_status()


def paired_time_ratios(plain_url: str, other_url: str, token: str, body: Path, pairs: int) -> list[float]:
    """Seconds of a request to ``other_url`` over seconds of the same request to ``plain_url``, ``pairs`` times."""
    headers = {"Content-Type": "text/csv", "Authorization": f"Token {token}"}
    payload = body.read_bytes()
    ratios = []
    with requests.Session() as session:

        def timed(url: str) -> float:
            started = time.perf_counter()
            session.post(url, data=payload, headers=headers, timeout=120).raise_for_status()
            return time.perf_counter() - started

        for pair in range(pairs):
            if pair % 2:
                other, plain = timed(other_url), timed(plain_url)
            else:
                plain, other = timed(plain_url), timed(other_url)
            ratios.append(other / plain)
    return ratios


def interval_method(target: dict, body: Path) -> str:
    """The interval method training chose for the bench's version (``absolute`` or ``scaled``)."""
    headers = {"Content-Type": "text/csv", "Authorization": f"Token {target['auth']}"}
    answer = requests.post(target["batch_interval"], data=body.read_bytes(), headers=headers, timeout=60)
    return answer.json()["intervals"]["method"]


def wrk(
    url: str, token: str, body: Path, *, connections: int, duration: int, content_type: str = "text/csv"
) -> dict[str, float]:
    script = body.parent / "post.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "30s", "-s", str(script), url],
        env={**os.environ, "BENCH_TOKEN": token, "BENCH_BODY": str(body), "BENCH_CONTENT_TYPE": content_type},
        check=True,
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"wrk saw failed requests against {url}:\n{out}")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return {"p50_ms": float(p50.group(1)) * scale, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


def tree_rss_mb(pid: int) -> float:
    """Summed RSS of a process and all its descendants (a multi-process server counts whole)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


def report(results: dict[str, dict[str, float]]) -> int:
    print(f"\n{'metric':<58}{'mlflow serve':>14}{'MDS':>12}{'MDS/mlflow':>12}{'target':>10}  ok")
    missed = 0
    for metric, (target, higher_is_better) in TARGETS.items():
        if metric not in results["MDS"]:
            continue
        peer, ours = results["mlflow serve"][metric], results["MDS"][metric]
        ratio = ours / peer
        ok = ratio >= target if higher_is_better else ratio <= target
        missed += not ok
        sign = ">=" if higher_is_better else "<="
        print(f"{metric:<58}{peer:>14.2f}{ours:>12.2f}{ratio:>12.3f}{sign:>4}{target:>6}  {'yes' if ok else 'NO'}")
    print("(multipart upload rows: MDS with curl -F's body, mlflow serve with the same rows as text/csv)")
    print(f"\n{'all targets met' if not missed else f'{missed} target(s) missed'}")
    return 1 if missed else 0


def report_log_overhead(samples: dict[str, dict[str, list[float]]]) -> int:
    """The prediction log's cost: MDS with it on minus MDS with it off, measured in the same rounds."""
    metric = "1-row p50 latency (ms)"
    on, off = samples["MDS"][metric], samples["MDS, log off"][metric]
    paired = statistics.median(a - b for a, b in zip(on, off, strict=True))
    medians = statistics.median(on) - statistics.median(off)
    print(f"\nprediction log, 1-row p50: on {statistics.median(on):.3f} ms, off {statistics.median(off):.3f} ms")
    print(f"  overhead: {medians:+.3f} ms (difference of medians), {paired:+.3f} ms (median of per-round differences)")
    for metric in TARGETS:
        if samples["MDS"][metric] and samples["MDS, log off"][metric]:
            print(
                f"  {metric:<58} on {statistics.median(samples['MDS'][metric]):>10.2f}"
                f"   off {statistics.median(samples['MDS, log off'][metric]):>10.2f}"
            )
    ok = max(medians, paired) <= LOG_OVERHEAD_TARGET_MS
    print(f"  target <= {LOG_OVERHEAD_TARGET_MS} ms: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


def report_interval_overhead(ratios: list[float], method: str) -> int:
    """What interval=0.9 adds to a 10k-row batch: the median of the paired time ratios."""
    overhead = statistics.median(ratios) - 1
    quartiles = statistics.quantiles(ratios, n=4)
    ok = overhead <= INTERVAL_OVERHEAD_TARGET
    print(f"\ninterval=0.9 on 10k-row batches ({method} intervals), {len(ratios)} request pairs:")
    print(f"  time ratio: median {1 + overhead:.3f}, quartiles {quartiles[0]:.3f} {quartiles[2]:.3f}")
    target = f"target <= {100 * INTERVAL_OVERHEAD_TARGET:.0f} %"
    print(f"  overhead {100 * overhead:+.1f} %, {target}: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        with_group = os.getpgid(server.pid)
        os.killpg(with_group, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(with_group, signal.SIGKILL)
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
