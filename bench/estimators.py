"""Benchmark the time-series options in-process (the ML core, no stack): today's default against ``estimator=auto``
with ``calendar=true``, judged on a later period none of them saw; and the backtest's cost at scale.

Accuracy: on the repository's sample data (``sample_data/time_series_weather.csv``, daily, 2 years) and on a public
real-world series a package ships offline (vega-datasets' Seattle daily weather 2012-2015: ``temp_max`` from
``precipitation``, ``temp_min`` and ``wind``), each configuration trains with ``training.ml.train`` exactly as a
job does (size bounds from the default budget) and is scored on the holdout: the newest 20 % of the rows, after
every row any configuration fit or backtested on. Reported: holdout MAE and RMSE, and auto+calendar's change
against the default (negative is better).

Cost: ``--scale-rows N`` (default 1M) times the default backtest (random forest, 3 folds; every candidate's with
``--scale-auto``) of an N-row training on ``bench/train.py``'s synthetic series (8 features), with the process's
peak RSS. The rest of a 1M-row training was measured through the stack (230 s, 2.2 GB worker peak, bench/README):
the estimate adds the two.

    .venv/bin/python bench/estimators.py [--scale-rows 1000000 | 0] [--scale-auto] [--skip-accuracy]
"""

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training import ml, sizing  # noqa: E402
from training.ml import backtest as backtests  # noqa: E402

CONFIGS = [
    ("default: random_forest", {"estimator": "random_forest"}),
    ("random_forest + calendar", {"estimator": "random_forest", "calendar": True}),
    ("extra_trees + calendar", {"estimator": "extra_trees", "calendar": True}),
    ("hist_gradient_boosting + calendar", {"estimator": "hist_gradient_boosting", "calendar": True}),
    ("auto", {"estimator": "auto"}),
    ("auto + calendar", {"estimator": "auto", "calendar": True}),
]
# The 1M-row training through the stack, measured on main dd4c316 without a backtest (bench/README.md).
STACK_1M_SECONDS, STACK_1M_PEAK_MB = 230.0, 2200.0


def sample_frame() -> pd.DataFrame:
    return pd.read_csv(ROOT / "sample_data" / "time_series_weather.csv")


def seattle_frame() -> pd.DataFrame:
    from vega_datasets import local_data

    frame = local_data.seattle_weather()
    return pd.DataFrame(
        {
            "timestamp": frame["date"].dt.strftime("%Y-%m-%d"),
            "precipitation": frame["precipitation"],
            "temp_min": frame["temp_min"],
            "wind": frame["wind"],
            "target": frame["temp_max"],
        }
    )


def bounded(params: ml.TrainingParams, n_rows: int) -> ml.TrainingParams:
    """The params a job would use: size bounds from the default budget (training.services.bounds)."""
    return sizing.bounded_params(params, budget=sizing.SizeBudget(), n_samples=ml.chronological_split(n_rows, 0.2))


def served(result: ml.TrainingResult) -> str:
    """The estimator served, and ``+ calendar`` where its model takes the calendar features."""
    calendar = result.data is not None and result.data.calendar_from is not None
    return result.estimator_name + (" + calendar" if calendar else "")


def accuracy(name: str, frame: pd.DataFrame) -> list[str]:
    lines = [
        f"\n### {name} ({len(frame)} rows)\n",
        "| configuration | served | holdout MAE | holdout RMSE | backtest RMSE (mean ± sd) | s |",
        "|---|---|---|---|---|---|",
    ]
    figures = {}
    for label, options in CONFIGS:
        data = ml.prepare_data(frame, target="target", timestamp="timestamp", calendar=options.get("calendar", False))
        params = bounded(ml.TrainingParams(**options), len(data.y))
        started = time.monotonic()
        result = ml.train(data, params)
        seconds = time.monotonic() - started
        figures[label] = result.metrics
        spread = (
            f"{result.metrics['backtest_rmse_mean']:.4g} ± {result.metrics['backtest_rmse_sd']:.3g}"
            if "backtest_rmse_mean" in result.metrics
            else "-"
        )
        lines.append(
            f"| {label} | {served(result)} | {result.metrics['mae']:.4g} | {result.metrics['rmse']:.4g} | "
            f"{spread} | {seconds:.1f} |"
        )
        print(lines[-1], flush=True)
    base, best = figures["default: random_forest"], figures["auto + calendar"]
    lines.append(
        f"\nauto + calendar vs the default: MAE {100 * (best['mae'] / base['mae'] - 1):+.1f} %, "
        f"RMSE {100 * (best['rmse'] / base['rmse'] - 1):+.1f} %"
    )
    print(lines[-1], flush=True)
    return lines


def synthetic(rows: int, seed: int = 9) -> ml.PreparedData:
    """``bench/train.py``'s series (rows one minute apart, 8 features, a nonlinear target with noise), made in
    memory rather than through a CSV."""
    rng = np.random.default_rng(seed)
    minute = np.arange(rows)
    x = rng.normal(size=(rows, 8))
    x[:, 0] = np.sin(2 * np.pi * minute / 1440) + 0.3 * x[:, 0]
    x[:, 3] = rng.uniform(0, 1, size=rows)
    y = (
        3 * np.sin(2 * x[:, 1])
        + x[:, 2] ** 2
        + 2 * x[:, 3] * x[:, 4]
        + np.abs(x[:, 5])
        + 1.5 * np.tanh(x[:, 6]) * x[:, 7]
        + 2 * x[:, 0]
        + 0.5 * rng.normal(size=rows)
    )
    timestamps = pd.Series(pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(minute, unit="min"))
    return ml.PreparedData(
        X=x.astype(np.float32), y=y, timestamps=timestamps, feature_names=[f"x{i}" for i in range(1, 9)]
    )


def scale(rows: int, estimators: tuple[str, ...]) -> list[str]:
    """The default backtest of a ``rows``-row training, timed alone (the rest of the training is measured through
    the stack in bench/train.py)."""
    data = synthetic(rows)
    params = bounded(ml.TrainingParams(), len(data.y))
    window = ml.chronological_split(len(data.y), params.test_size)
    k = backtests.folds_for(params, window)
    lines = [f"\n### Backtest cost at {rows} rows x 8 features (default: {k} folds)\n"]
    total = 0.0
    for name in estimators:
        started, cpu_started = time.monotonic(), time.process_time()
        result = backtests.backtest(name, data, window, params, k)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
        # On a shared machine the wall time says how busy it was; CPU seconds over the 2 vCPU a worker has (the
        # forests fit on every core) say what an idle one takes.
        total += cpu / 2
        rows_fit = [fold["train_rows"] for fold in result.folds]
        lines.append(f"- {name}: {seconds:.0f} s wall, {cpu:.0f} CPU-s, for {k} folds fit on {rows_fit} rows")
        print(lines[-1], flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    default = estimators[0] == ml.RANDOM_FOREST
    lines += [
        f"- peak RSS of this process: {peak_mb:.0f} MB",
        f"- {'the default' if len(estimators) == 1 else 'auto'} at {rows} rows, estimated: "
        f"{STACK_1M_SECONDS:.0f} s (the training through the stack without a backtest, 1M rows) + {total:.0f} s of "
        f"backtest (CPU-s / 2 vCPU) = {STACK_1M_SECONDS + total:.0f} s (target 600 s)"
        if default
        else "",
    ]
    for line in lines[-2:]:
        print(line, flush=True)
    return lines


def main() -> None:
    # scikit-learn 1.9 warns on every forest fit in a thread of its own pool; nothing to act on here.
    warnings.filterwarnings("ignore", message=".*sklearn.utils.parallel.delayed.*")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale-rows", type=int, default=1_000_000, help="rows of the cost run; 0 skips it")
    parser.add_argument(
        "--scale-auto", action="store_true", help="time every candidate's backtest (auto), not only the default's"
    )
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    lines = []
    if not args.skip_accuracy:
        lines += accuracy("sample_data/time_series_weather.csv", sample_frame())
        lines += accuracy("vega-datasets seattle-weather (temp_max)", seattle_frame())
    if args.scale_rows:
        lines += scale(args.scale_rows, ml.ESTIMATORS if args.scale_auto else (ml.RANDOM_FOREST,))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
