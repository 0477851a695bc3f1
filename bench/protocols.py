"""Benchmark the three doors to one model, side by side on one inference server: /predict (text/csv), the Open
Inference Protocol over REST (/v2/.../infer, JSON) and over gRPC (raw_input_contents).

Registers a random forest (100 full-depth trees, 8 features) into an embedded store through the product's training
service (``bench/predict.py``'s ``prepare``), starts one inference server serving HTTP and gRPC
(``--grpc-bind``), waits until the default engine is the one it keeps, then measures in alternating rounds:

    1-row p50 latency (1 connection) and requests/s at 8 connections, for /predict, V2 REST and gRPC;
    10k-row batches, rows/s at 1 connection, for /predict's CSV and gRPC's raw_input_contents.

HTTP load comes from wrk; gRPC load from grpc.aio in this process (one channel per connection, each with one call in
flight), which spends some of the same 2 vCPUs as the server: gRPC's numbers are, if anything, low.

Targets: V2 REST's 1-row p50 and requests/s within 10 % of /predict's; gRPC's 1-row requests/s at least V2 REST's;
gRPC's 10k-row rows/s at least /predict CSV's. Prints a table and exits 1 if a target is missed.

    .venv/bin/python bench/protocols.py [--days 12000] [--duration 6] [--rounds 3] [--port-base 18100] [--keep]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import predict  # noqa: E402  (bench/predict.py: training, wrk, server start and stop)

# (metric, baseline, candidate, least candidate/baseline ratio or None, most ratio or None)
TARGETS = [
    ("1-row p50 latency (ms)", "/predict", "V2 REST", None, 1.10),
    ("1-row throughput, 8 connections (req/s)", "/predict", "V2 REST", 0.90, None),
    ("1-row throughput, 8 connections (req/s)", "V2 REST", "gRPC", 1.0, None),
    ("10k-row batches, 1 connection (rows/s)", "/predict", "gRPC", 1.0, None),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12000, help="rows of training data (one per day)")
    parser.add_argument("--duration", type=int, default=6, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurements per metric (median kept)")
    parser.add_argument("--port-base", type=int, default=18100, help="HTTP on this + 1, gRPC on this + 2")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    http_port, grpc_port = args.port_base + 1, args.port_base + 2

    data_dir = Path(tempfile.mkdtemp(prefix="mds-bench-protocols-"))
    (data_dir / "tmp").mkdir()
    (data_dir / "mlflow").mkdir()
    env = {
        key: value
        for key, value in {
            **os.environ,
            "MDS_DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "mds_project.settings.local",
            "DJANGO_DEBUG": "false",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "TMPDIR": str(data_dir / "tmp"),
        }.items()
        # The embedded store: the server reads the version in-process.
        if key not in ("MLFLOW_TRACKING_URI", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    server = None
    try:
        version, token, bodies = predict.prepare(data_dir, env, args.days)
        name = predict.MODEL_NAME
        one = pd.read_csv(bodies["one"])[predict.FEATURES].to_numpy(dtype=np.float32)
        batch = pd.read_csv(bodies["batch"])[predict.FEATURES].to_numpy(dtype=np.float32)
        bodies["v2_one"] = data_dir / "one.json"
        bodies["v2_one"].write_text(
            json.dumps({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": one.tolist()}]})
        )
        base = f"http://127.0.0.1:{http_port}"
        urls = {
            "/predict": f"{base}/predict?model_name={name}&version={version}",
            "V2 REST": f"{base}/v2/models/{name}/versions/{version}/infer",
        }
        command = [sys.executable, "-m", "mds_project.inference_server", "--bind", f"127.0.0.1:{http_port}"]
        command += ["--grpc-bind", f"127.0.0.1:{grpc_port}"]
        server, cold = predict.start_cold(
            command,
            {**env, "INFERENCE_ACCESSLOG": "false"},
            urls["/predict"],
            token,
            bodies["one"],
            data_dir / "s.log",
        )
        print(f"server answered its first prediction after {cold:.1f} s")
        settle(urls["/predict"], token, bodies)
        grpc_target = f"127.0.0.1:{grpc_port}"
        grpc_one = infer_request(name, version, one)
        grpc_batch = infer_request(name, version, batch)
        metadata = (("authorization", f"Token {token}"),)
        asyncio.run(grpc_load(grpc_target, grpc_batch, metadata, connections=1, duration=1))

        samples: dict[str, dict[str, list[float]]] = {"/predict": {}, "V2 REST": {}, "gRPC": {}}

        def add(label: str, metric: str, value: float) -> None:
            samples[label].setdefault(metric, []).append(value)

        for _ in range(args.rounds):
            for label, body in (("/predict", "one"), ("V2 REST", "v2_one")):
                latency = predict.wrk(urls[label], token, bodies[body], connections=1, duration=args.duration)
                add(label, "1-row p50 latency (ms)", latency["p50_ms"])
                load = predict.wrk(urls[label], token, bodies[body], connections=8, duration=args.duration)
                add(label, "1-row throughput, 8 connections (req/s)", load["rps"])
            latency = asyncio.run(grpc_load(grpc_target, grpc_one, metadata, connections=1, duration=args.duration))
            add("gRPC", "1-row p50 latency (ms)", latency["p50_ms"])
            load = asyncio.run(grpc_load(grpc_target, grpc_one, metadata, connections=8, duration=args.duration))
            add("gRPC", "1-row throughput, 8 connections (req/s)", load["rps"])
            rows = predict.wrk(urls["/predict"], token, bodies["batch"], connections=1, duration=args.duration)
            add("/predict", "10k-row batches, 1 connection (rows/s)", rows["rps"] * len(batch))
            rows = asyncio.run(grpc_load(grpc_target, grpc_batch, metadata, connections=1, duration=args.duration))
            add("gRPC", "10k-row batches, 1 connection (rows/s)", rows["rps"] * len(batch))
        return report(samples)
    finally:
        if server is not None:
            predict.stop(server)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def settle(url: str, token: str, bodies: dict[str, Path]) -> None:
    """Warm the server, and wait until the default engine is the one it keeps (sklearn, once its pickle loaded)."""
    predict.warm(url, token, bodies["one"], 50)
    predict.warm(url, token, bodies["batch"], 3)
    deadline = time.monotonic() + 60
    while predict.engine(url, token, bodies["batch"]) != "sklearn" and time.monotonic() < deadline:
        time.sleep(0.5)
    print(
        f"engine for 1 row {predict.engine(url, token, bodies['one'])}, "
        f"for 10k rows {predict.engine(url, token, bodies['batch'])}"
    )


def infer_request(name: str, version: int, X: np.ndarray):
    from inference.v2.proto import open_inference_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=list(X.shape))
    return pb.ModelInferRequest(
        model_name=name,
        model_version=str(version),
        inputs=[tensor],
        raw_input_contents=[np.ascontiguousarray(X, dtype="<f4").tobytes()],
    )


async def grpc_load(target: str, request, metadata, *, connections: int, duration: float) -> dict[str, float]:
    """``connections`` channels, each with one ModelInfer in flight at a time, for ``duration`` seconds."""
    import grpc

    from inference.v2.proto import open_inference_pb2_grpc as pb_grpc

    # A channel of its own per connection (grpc shares one connection among channels unless told not to).
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(connections)]
    latencies: list[float] = []
    end = time.perf_counter() + duration

    async def drive(channel) -> None:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while time.perf_counter() < end:
            started = time.perf_counter()
            await stub.ModelInfer(request, metadata=metadata)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(drive(channel) for channel in channels))
    finally:
        for channel in channels:
            await channel.close()
    elapsed = time.perf_counter() - started
    return {"p50_ms": statistics.median(latencies) * 1000, "rps": len(latencies) / elapsed}


def report(samples: dict[str, dict[str, list[float]]]) -> int:
    results = {
        label: {metric: statistics.median(values) for metric, values in by_metric.items()}
        for label, by_metric in samples.items()
    }
    for label, by_metric in samples.items():
        for metric, values in by_metric.items():
            print(f"{label:<10}{metric:<42}" + " ".join(f"{value:.2f}" for value in values))
    metrics = list(dict.fromkeys(metric for by_metric in samples.values() for metric in by_metric))
    print(f"\n{'metric (medians)':<42}" + "".join(f"{label:>12}" for label in samples))
    for metric in metrics:
        cells = "".join(
            f"{results[label][metric]:>12.2f}" if metric in results[label] else f"{'':>12}" for label in samples
        )
        print(f"{metric:<42}{cells}")
    print()
    missed = 0
    for metric, baseline, candidate, least, most in TARGETS:
        ratio = results[candidate][metric] / results[baseline][metric]
        ok = (least is None or ratio >= least) and (most is None or ratio <= most)
        bound = f">= {least}" if least is not None else f"<= {most}"
        print(f"{candidate} / {baseline}, {metric}: {ratio:.3f} (target {bound})  {'ok' if ok else 'MISSED'}")
        missed += not ok
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
