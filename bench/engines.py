"""The prediction engines side by side, in-process: rows/s by batch size and by concurrent requests.

Trains forests like the product's (100 trees on 8 features of ``sample_data/make_weather.py``: full depth and
``max_depth=12``), converts them as training does, then times each engine the way the server runs it:

- ``onnx/1t``: one onnxruntime call with one intra-op thread (what a small request gets);
- ``onnx/split``: the batch split across the CPU budget's threads, one single-threaded call each;
- ``onnx/intra``: one call with intra-op threads = the CPU budget (spinning off);
- ``sklearn/split``: the forest's trees split across the CPU budget's threads (``inference.forest.sum_of_trees``);
- ``compiled/1t``, ``compiled/split``: the compiled walk (``inference.compiled_forest``), in one call, or with
  the rows split across the CPU budget's threads (what the sklearn engine runs when the walk is built);
- ``treelite`` (GTIL), when the package is installed.

For each batch size (1, 100, 10 000, 100 000 rows) and each number of concurrent requests (1, 2, 8 threads each
sending the same batch in a loop), it prints rows/s; the best engine per line is marked. Used to set
``MDS_AUTO_SKLEARN_MIN_ROWS`` and the thread budget (see ``inference/cpu_budget.py``).

    .venv/bin/python bench/engines.py [--days 12000] [--seconds 2] [--rows 1,100,10000,100000] [--clients 1,2,8]
"""

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12000, help="rows of training data")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rows", default="1,100,10000,100000")
    parser.add_argument("--clients", default="1,2,8")
    parser.add_argument("--depths", default="full,12")
    args = parser.parse_args()

    import onnxruntime as ort

    from inference.cpu_budget import cpu_budget
    from inference.forest import sum_of_trees
    from sample_data.make_weather import make_weather
    from training import ml

    budget = cpu_budget()
    print(f"CPU budget: {budget} (affinity and cgroup quota)")
    frame = make_weather(days=args.days, seed=11)
    features = [c for c in frame.columns if c not in ("timestamp", "target")]
    X_all = frame[features].to_numpy(dtype=np.float32)
    y = frame["target"].to_numpy()
    pool = np.concatenate([X_all] * (1 + 100_000 // len(X_all)))[:100_000]

    for depth in args.depths.split(","):
        max_depth = None if depth == "full" else int(depth)
        params = ml.TrainingParams(n_estimators=100, max_depth=max_depth)
        started = time.monotonic()
        model = ml.fit_random_forest(X_all, y, params)
        onnx_bytes = ml.to_onnx(model, len(features)).SerializeToString()
        print(f"\nforest max_depth={depth}: trained and converted in {time.monotonic() - started:.0f} s")
        engines = _engines(ort, onnx_bytes, model, budget, sum_of_trees)
        for rows in [int(r) for r in args.rows.split(",")]:
            X = np.ascontiguousarray(pool[:rows])
            for clients in [int(c) for c in args.clients.split(",")]:
                figures = {name: _rows_per_s(run, X, clients, args.seconds) for name, run in engines.items()}
                best = max(figures, key=figures.get)
                line = "  ".join(
                    f"{name} {value:>10.0f}{'*' if name == best else ' '}" for name, value in figures.items()
                )
                print(f"{rows:>7} rows, {clients} clients: {line}")
    return 0


def _engines(ort, onnx_bytes: bytes, model, budget: int, sum_of_trees) -> dict:
    def session(threads: int, spinning: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])

    from inference.compiled_forest import compile_forest

    single, intra = session(1, True), session(budget, False)
    executor = ThreadPoolExecutor(max_workers=budget)
    trees = [estimator.tree_ for estimator in model.estimators_]
    compiled = compile_forest(trees, model.n_features_in_)

    def onnx_split(X):
        if len(X) < 512 or budget == 1:
            return single.run(None, {"input": X})[0]
        return np.concatenate(
            list(executor.map(lambda part: single.run(None, {"input": part})[0], np.array_split(X, budget)))
        )

    def sklearn_split(X):
        if len(X) < 512 or budget == 1:
            return sum_of_trees(trees, X) / len(trees)
        shares = executor.map(sum_of_trees, [trees[i::budget] for i in range(budget)], [X] * budget)
        return sum(shares) / len(trees)

    engines = {
        "onnx/1t": lambda X: single.run(None, {"input": X})[0],
        "onnx/split": onnx_split,
        "onnx/intra": lambda X: intra.run(None, {"input": X})[0],
        "sklearn/1t": lambda X: sum_of_trees(trees, X) / len(trees),
        "sklearn/split": sklearn_split,
    }
    if compiled is not None:

        def compiled_split(X):
            if len(X) < 512 or budget == 1:
                return compiled.sum_of_trees(X) / len(trees)
            return np.concatenate(list(executor.map(compiled.sum_of_trees, np.array_split(X, budget)))) / len(trees)

        engines["compiled/1t"] = lambda X: compiled.sum_of_trees(X) / len(trees)
        engines["compiled/split"] = compiled_split
    try:
        import treelite

        tl_model = treelite.sklearn.import_model(model)
        engines["treelite"] = lambda X: treelite.gtil.predict(tl_model, X, nthread=budget)
    except ImportError:
        pass
    return engines


def _rows_per_s(run, X: np.ndarray, clients: int, seconds: float) -> float:
    run(X)  # warm
    done = []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client():
        count = 0
        while time.monotonic() < stop:
            run(X)
            count += 1
        with lock:
            done.append(count)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) * len(X) / (time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
