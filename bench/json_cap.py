"""How fast, and in how much memory, /predict refuses a JSON body over the row cap: streamed count vs. parse first.

Trains a small forest in a temporary embedded store, then posts a 2M-row, ~24 MB ``instances`` body to the
inference server's WSGI application: once as it is served (the rows counted as the body's tokens stream by,
``inference.json_limits``) and once as before (``json.loads`` of the whole body, then the count), in the same
process. Reports each refusal's time and the peak of memory allocated during it (tracemalloc, in a separate call:
tracing slows Python down), and the time of accepted bodies (one just over ``STREAM_CHECK_BYTES``, 10 000 rows and
the row cap) both ways: the walk is skipped for a body that cannot hold more values than the largest request.

    .venv/bin/python bench/json_cap.py [--rows 2000000] [--repeat 3]

Target (issue 17): the 2M-row body refused within 2 s and under 150 MB more peak memory.
"""

import argparse
import json
import statistics
import sys
import time
import tracemalloc

from in_process import embedded_store, predict_caller, prediction_log_flush, version_train


def timed(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_mb(call) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with embedded_store("mds-json-cap-"):
        from django.conf import settings

        from inference import parsing

        settings.MDS_PREDICT_MAX_BYTES = 256 * 1024 * 1024
        trained = version_train(model_name="json_cap", days=200)
        features = [column for column in trained.frame.columns if column not in ("timestamp", "target")]
        # ~12 bytes a row, as the body the issue measured (rows past the cap are never read, so their width is free).
        huge = b'{"instances": [' + b",".join([b"[1,2,3,4,5]"] * args.rows) + b"]}"
        print(f"body: {args.rows} rows, {len(huge) / 1e6:.1f} MB; cap {settings.MDS_PREDICT_MAX_ROWS} rows")
        refuse = predict_caller(trained, huge, content_type="application/json", status="413")
        row = trained.frame[features].iloc[0].tolist()

        def accepted(n_rows: int):
            body = json.dumps({"instances": [row] * n_rows}).encode()
            return predict_caller(trained, body, content_type="application/json"), len(body)

        under_rows = parsing.STREAM_CHECK_BYTES // len(json.dumps(row))
        cases = {
            "just over STREAM_CHECK_BYTES": accepted(under_rows + 50),
            "10 000 rows": accepted(10_000),
            "the row cap": accepted(settings.MDS_PREDICT_MAX_ROWS),
        }
        results = {}
        for mode, threshold in (("streamed count", parsing.STREAM_CHECK_BYTES), ("parse first", float("inf"))):
            parsing.STREAM_CHECK_BYTES = threshold
            results[mode] = {"refusal_s": timed(refuse, args.repeat), "refusal_peak_mb": peak_mb(refuse)}
            for name, (call, size) in cases.items():
                call()  # warm: the version is loaded and the engine chosen
                results[mode][f"{name} ({size / 1e3:.0f} kB) ms"] = 1e3 * timed(call, args.repeat * 5)
        prediction_log_flush()
    for mode, numbers in results.items():
        print(f"{mode:>15}: " + ", ".join(f"{name} {value:.2f}" for name, value in numbers.items()))
    streamed = results["streamed count"]
    met = streamed["refusal_s"] < 2 and streamed["refusal_peak_mb"] < 150
    print("target met" if met else "target MISSED: 413 within 2 s and under 150 MB more peak memory")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
