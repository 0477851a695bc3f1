"""Benchmark the three doors to one model, side by side on one inference server: /predict (text/csv), the Open
Inference Protocol over REST (/v2/.../infer, JSON) and over gRPC (raw_input_contents).

Registers a random forest (100 full-depth trees, 8 features) into an embedded store through the product's training
service (``bench/predict.py``'s ``prepare``), starts one inference server serving HTTP and gRPC
(``--grpc-bind``), waits until the default engine is the one it keeps, then measures in alternating rounds:

    1-row p50 latency (1 connection) and requests/s at 8 connections, for /predict, V2 REST and gRPC;
    10k-row batches, rows/s at 1 connection, for /predict's CSV and gRPC's raw_input_contents.

Load comes from two C programs outside this process: wrk for HTTP/1.1, h2load (nghttp2's) for gRPC, which is HTTP/2:
each of its clients posts the same framed ModelInferRequest to ``/inference.GRPCInferenceService/ModelInfer``, one
call in flight per connection. h2load counts HTTP statuses, and a gRPC error is an HTTP 200 with a non-zero
``grpc-status`` trailer, so every gRPC measurement is checked: a real gRPC call with the same request bytes must give
V2 REST's predictions before it, and after it h2load's response bytes must be its successes times that answer's size
and the server's ``mds_predictions`` count for ``v2-grpc`` must have grown by them alone (status 200). p50 is the
median of h2load's per-request times (``--log-file``).

Targets: V2 REST's 1-row p50 and requests/s within 10 % of /predict's; gRPC's 1-row requests/s at least V2 REST's;
gRPC's 10k-row rows/s at least /predict CSV's. Prints a table and exits 1 if a target is missed.

    apt-get install wrk nghttp2-client
    .venv/bin/python bench/protocols.py [--days 12000] [--duration 6] [--rounds 3] [--port-base 18100] [--keep]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import predict  # noqa: E402  (bench/predict.py: training, wrk, server start and stop)

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
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
    for program, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if shutil.which(program) is None:
            sys.exit(f"{program} is missing: apt-get install {package}")
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
        grpc_url = f"http://127.0.0.1:{grpc_port}{GRPC_PATH}"
        loads = {
            rows: GrpcLoad.checked(
                grpc_url,
                token,
                infer_request(name, version, X),
                expected=v2_predictions(urls["V2 REST"], token, X),
                body=data_dir / f"grpc_{rows}.bin",
                metrics_url=f"{base}/metrics",
            )
            for rows, X in (("one", one), ("batch", batch))
        }
        loads["batch"].run(connections=1, duration=1)

        samples: dict[str, dict[str, list[float]]] = {"/predict": {}, "V2 REST": {}, "gRPC": {}}

        def add(label: str, metric: str, value: float) -> None:
            samples[label].setdefault(metric, []).append(value)

        for _ in range(args.rounds):
            for label, body in (("/predict", "one"), ("V2 REST", "v2_one")):
                latency = predict.wrk(urls[label], token, bodies[body], connections=1, duration=args.duration)
                add(label, "1-row p50 latency (ms)", latency["p50_ms"])
                load = predict.wrk(urls[label], token, bodies[body], connections=8, duration=args.duration)
                add(label, "1-row throughput, 8 connections (req/s)", load["rps"])
            latency = loads["one"].run(connections=1, duration=args.duration)
            add("gRPC", "1-row p50 latency (ms)", latency["p50_ms"])
            load = loads["one"].run(connections=8, duration=args.duration)
            add("gRPC", "1-row throughput, 8 connections (req/s)", load["rps"])
            rows = predict.wrk(urls["/predict"], token, bodies["batch"], connections=1, duration=args.duration)
            add("/predict", "10k-row batches, 1 connection (rows/s)", rows["rps"] * len(batch))
            rows = loads["batch"].run(connections=1, duration=args.duration)
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


def v2_predictions(url: str, token: str, X: np.ndarray) -> list[float]:
    """What V2 REST answers for these rows (the reference a gRPC answer must match)."""
    body = {"inputs": [{"name": "input", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
    response = requests.post(url, json=body, headers={"Authorization": f"Token {token}"}, timeout=120)
    response.raise_for_status()
    return response.json()["outputs"][0]["data"]


@dataclass
class GrpcLoad:
    """h2load posting one ModelInfer call, again and again, with checks that every call succeeded."""

    url: str
    token: str
    body: Path
    answer_bytes: int  # DATA bytes of one good answer: its frame header and message
    metrics_url: str

    @classmethod
    def checked(cls, url: str, token: str, request, *, expected: list[float], body: Path, metrics_url: str):
        """Write ``request`` as gRPC frames it, and check that a real gRPC call with it predicts ``expected``."""
        import grpc

        from inference.v2.proto import open_inference_pb2 as pb
        from inference.v2.proto import open_inference_pb2_grpc as pb_grpc

        message = request.SerializeToString()
        # gRPC's length-prefixed message: not compressed (0), then the length as 4 bytes, big-endian.
        body.write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)
        target = url.split("://", 1)[1].split("/", 1)[0]
        with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)]) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            sent = pb.ModelInferRequest.FromString(body.read_bytes()[5:])
            answer = stub.ModelInfer(sent, metadata=(("authorization", f"Token {token}"),), timeout=120)
        got = np.frombuffer(answer.raw_output_contents[0], dtype="<f8")
        if not np.array_equal(got, np.asarray(expected, dtype=np.float64)):
            sys.exit(
                f"gRPC answered other predictions than V2 REST for the same rows: {got[:5]} against {expected[:5]}"
            )
        return cls(url, token, body, 5 + len(answer.SerializeToString()), metrics_url)

    def run(self, *, connections: int, duration: int) -> dict[str, float]:
        """``connections`` HTTP/2 connections, each with one call in flight, for ``duration`` seconds."""
        log = self.body.with_suffix(".log")
        before = self.grpc_answers()
        out = subprocess.run(
            ["h2load", f"-c{connections}", "-m1", f"-D{duration}", f"--log-file={log}", "-d", str(self.body)]
            + ["-H", "content-type: application/grpc", "-H", "te: trailers"]
            + ["-H", f"authorization: Token {self.token}", self.url],
            check=True,
            capture_output=True,
            text=True,
            timeout=duration + 60,
        ).stdout
        after = self.grpc_answers()
        started, done, succeeded = (int(_found(rf"(\d+) {word}", out)) for word in ("started", "done", "succeeded"))
        data = int(_found(r"\((\d+)\) data", out))
        grown = {status: after.get(status, 0) - before.get(status, 0) for status in after}
        answered = grown.pop("200", 0)
        # Calls still in flight when the time is up are cut by h2load, but may still be answered by the server.
        if (
            not succeeded
            or done != succeeded
            or data != succeeded * self.answer_bytes
            or not succeeded <= answered <= started
            or any(grown.values())
        ):
            sys.exit(
                f"h2load saw failed gRPC calls ({succeeded} succeeded, {data} bytes of answers for "
                f"{self.answer_bytes} each; the server counted {answered} answers and {grown} errors):\n{out}"
            )
        times = [int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.split("\t")[1] == "200"]
        rps = float(_found(r"finished in [\d.]+m?s, ([\d.]+) req/s", out))
        return {"p50_ms": statistics.median(times) / 1000, "rps": rps}

    def grpc_answers(self) -> dict[str, float]:
        """The server's count of gRPC inference answers, by status."""
        text = requests.get(self.metrics_url, timeout=30).text
        counts: dict[str, float] = {}
        for labels, value in re.findall(r"^mds_predictions_total\{(.*)\} (\S+)$", text, re.MULTILINE):
            fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if fields.get("protocol") == "v2-grpc":
                counts[fields["status"]] = counts.get(fields["status"], 0) + float(value)
        return counts


def _found(pattern: str, out: str) -> str:
    match = re.search(pattern, out)
    if match is None:
        sys.exit(f"h2load's output has no {pattern!r}:\n{out}")
    return match.group(1)


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
