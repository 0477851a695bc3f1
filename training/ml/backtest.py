"""Rolling-origin backtests: fit on an expanding window of the older rows, score the next slice, K times. No Django.

The folds lie inside the training window (the rows before the holdout), so the holdout stays unseen by every
choice the backtest makes (``estimator=auto``) and still judges the model served. The newest ``K`` slices of
``(rows - gap) // (K + 1)`` rows each are scored, oldest first; fold ``i`` fits on every row up to ``gap`` rows
before its slice (the slices of scikit-learn's ``TimeSeriesSplit``). Above ``MAX_TRAIN_ROWS`` a fold fits on the
newest ``MAX_TRAIN_ROWS`` of them only, so a backtest of a million rows costs about what one of 200k does (a
forest's trees draw at most 100k rows each anyway: training.sizing).
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.tabular import TableError

from .data import MIN_HOLDOUT_ROWS, PreparedData
from .estimators import Progress, fit_estimator, no_progress, openmp_threads, regression_metrics
from .params import TrainingParams

DEFAULT_FOLDS = 3
# Training rows of one fold at most: measured, a fold of a 100-tree forest then fits in ~25 s on 2 vCPU, so the
# default 3 folds (9 with estimator=auto) keep a million-row training within its 10 minutes (docs/time-series.md).
MAX_TRAIN_ROWS = 200_000
METRICS = ("mae", "rmse", "r2")


@dataclass(frozen=True)
class Fold:
    number: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


@dataclass
class BacktestResult:
    """One estimator's backtest: each fold's figures, and their mean and sample standard deviation."""

    estimator: str
    # Whether the candidate had the timestamp's calendar features (``estimator=auto`` with ``calendar=true`` also
    # tries today's default without them).
    calendar: bool = False
    folds: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """The summary as run metrics: ``backtest_mae_mean``, ``backtest_mae_sd``, ..."""
        return {f"backtest_{key}": value for key, value in self.summary.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "calendar": self.calendar, "folds": self.folds, **self.summary}


def candidate_label(record: dict[str, Any]) -> str:
    """A backtest record's (``BacktestResult.as_dict()``, a leaderboard entry) name for people: its estimator,
    and ``+ calendar`` where it had the calendar features."""
    return record["estimator"] + (" + calendar" if record.get("calendar") else "")


def max_folds(n_window: int, gap: int) -> int:
    """The most folds ``n_window`` rows allow with ``gap``: every slice and the first fit need 2 rows."""
    # Each of the k + 1 equal slices (k scored, the first fit on) needs MIN_HOLDOUT_ROWS rows.
    return max(0, (n_window - gap) // MIN_HOLDOUT_ROWS - 1)


def folds_for(params: TrainingParams, n_window: int) -> int:
    """The folds the training window gets: ``params.backtest``, or by default 3 (fewer where the rows allow
    fewer, none below 2).

    Raises:
        TableError: ``backtest_too_many_folds`` for a ``backtest`` (or ``gap``) the rows cannot hold.
    """
    most = max_folds(n_window, params.gap)
    if params.backtest is None:
        return min(DEFAULT_FOLDS, most) if most >= 2 else 0
    if params.backtest > most:
        raise TableError(
            f"backtest={params.backtest} with gap={params.gap} needs more rows than the training window's "
            f"{n_window}: at most {most} folds fit (each fold scores at least {MIN_HOLDOUT_ROWS} rows and fits on "
            "at least as many).",
            code="backtest_too_many_folds",
            extra={"backtest": params.backtest, "gap": params.gap, "rows": n_window, "max_backtest": most},
        )
    return params.backtest


def folds(n_window: int, k: int, gap: int = 0, max_train_rows: int = MAX_TRAIN_ROWS) -> list[Fold]:
    """The ``k`` folds of ``n_window`` time-ordered rows, oldest first."""
    size = (n_window - gap) // (k + 1)
    result = []
    for number in range(k):
        test_start = n_window - (k - number) * size
        train_end = test_start - gap
        result.append(
            Fold(
                number=number + 1,
                train_start=max(0, train_end - max_train_rows),
                train_end=train_end,
                test_start=test_start,
                test_end=test_start + size,
            )
        )
    return result


def backtest(
    name: str,
    data: PreparedData,
    n_window: int,
    params: TrainingParams,
    k: int,
    progress: Progress = no_progress,
) -> BacktestResult:
    """Backtest estimator ``name`` over the first ``n_window`` rows of ``data`` in ``k`` folds."""
    with openmp_threads(name, n_window):
        return _backtest(name, data, n_window, params, k, progress)


def _backtest(
    name: str, data: PreparedData, n_window: int, params: TrainingParams, k: int, progress: Progress
) -> BacktestResult:
    result = BacktestResult(estimator=name, calendar=data.calendar_from is not None)
    planned = folds(n_window, k, params.gap)
    for index, fold in enumerate(planned):

        def fold_progress(done: float, index: int = index) -> None:
            progress((index + done) / len(planned))

        model = fit_estimator(
            name,
            data.X[fold.train_start : fold.train_end],
            data.y[fold.train_start : fold.train_end],
            params,
            fold_progress,
        )
        y_true = data.y[fold.test_start : fold.test_end]
        scores = regression_metrics(y_true, np.asarray(model.predict(data.X[fold.test_start : fold.test_end])))
        del model
        result.folds.append(
            {
                "fold": fold.number,
                "train_rows": fold.train_end - fold.train_start,
                "test_rows": fold.test_end - fold.test_start,
                "test_from": data.timestamps.iloc[fold.test_start].isoformat(),
                "test_to": data.timestamps.iloc[fold.test_end - 1].isoformat(),
                **scores,
            }
        )
    for metric in METRICS:
        values = np.array([fold[metric] for fold in result.folds], dtype=np.float64)
        result.summary[f"{metric}_mean"] = float(values.mean())
        result.summary[f"{metric}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return result


def best(results: list[BacktestResult]) -> BacktestResult:
    """The result with the lowest mean RMSE; a tie goes to the earlier (today's default first)."""
    return min(results, key=lambda result: result.summary["rmse_mean"])
