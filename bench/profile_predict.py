"""Where a /predict request spends its time, in-process: cProfile over the inference server's WSGI application.

Trains one forest (100 trees, 8 features) in a temporary embedded store, then calls the inference WSGI
application directly, with server defaults (no ``format``), and prints the functions with the most own time:

    .venv/bin/python bench/profile_predict.py [--days 4000] [--calls 3000] [--batch-calls 30] [--top 25]

``--rows 1`` profiles one-row CSV bodies, ``--rows 10000`` batches; both by default. The prediction log's
writer thread runs as in production, but cProfile sees only the calling thread.
"""

import argparse
import cProfile
import pstats
import sys
import time

from in_process import embedded_store, predict_caller, prediction_log_flush, version_train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12000, help="rows of training data (one per day)")
    parser.add_argument("--max-depth", type=int, default=None, help="tree depth (default: full depth)")
    parser.add_argument("--calls", type=int, default=3000, help="one-row calls profiled")
    parser.add_argument("--batch-calls", type=int, default=30, help="10k-row calls profiled")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime (own time) or cumulative")
    parser.add_argument("--rows", default="1,10000", help="batch sizes profiled")
    args = parser.parse_args()
    with embedded_store("mds-profile-"):
        return run(args)


def run(args) -> int:
    from inference.compiled_forest import walk_library

    trained = version_train(model_name="rf_profile", days=args.days, max_depth=args.max_depth)
    features = trained.frame.iloc[:, 1:-1]
    for rows in [int(rows) for rows in args.rows.split(",")]:
        calls = args.calls if rows < 1000 else args.batch_calls
        predict = predict_caller(trained, features.iloc[:rows].to_csv(index=False).encode())

        def call(predict=predict) -> str:
            return predict()["X-Model-Format"]

        settled = "sklearn" if rows >= 2000 or walk_library() is not None else "onnx"
        deadline = time.monotonic() + 60
        while call() != settled and time.monotonic() < deadline:
            time.sleep(0.2)  # the default engine answers ONNX until sklearn has loaded
        for _ in range(min(calls, 200)):
            call()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(calls):
            engine = call()
        profiler.disable()
        per_call = (time.perf_counter() - started) / calls * 1000
        print(f"\n=== {rows} row(s), {calls} calls, engine {engine}: {per_call:.3f} ms per call under cProfile ===")
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    prediction_log_flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
