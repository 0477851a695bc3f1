"""The ML core: prepare a time-series table, backtest and fit a model, convert it to ONNX, measure both. No Django.

Rows are ordered by timestamp and the holdout is the most recent ``test_size`` share, so the reported metrics
say how the model does on the future rather than on shuffled neighbours of its training rows. Inside the rest
(the training window) a rolling-origin backtest (``backtest``) scores the estimator on several later slices, and
with ``estimator=auto`` chooses it. The model is fit on the whole window, whose newest ``calibration_size`` share
also calibrates the prediction intervals (``training.conformal``).
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import conformal
from . import backtest as backtests
from .data import (
    MIN_HOLDOUT_ROWS,
    MIN_ROWS,
    PreparedData,
    calendar_clash_check,
    calibration_split,
    chronological_split,
    prepare_data,
    with_calendar,
    without_calendar,
)
from .estimators import (
    Progress,
    feature_importances,
    fit_estimator,
    fit_random_forest,
    onnx_predict,
    openmp_threads,
    parity_metrics,
    regression_metrics,
    to_onnx,
    tree_chunk,
)
from .params import AUTO, ESTIMATOR_CHOICES, ESTIMATORS, RANDOM_FOREST, TrainingParams

__all__ = [
    "AUTO",
    "ESTIMATORS",
    "ESTIMATOR_CHOICES",
    "RANDOM_FOREST",
    "MIN_HOLDOUT_ROWS",
    "MIN_ROWS",
    "PreparedData",
    "Progress",
    "TrainingParams",
    "TrainingResult",
    "backtests",
    "calendar_clash_check",
    "calibration_split",
    "chronological_split",
    "fit_estimator",
    "fit_random_forest",
    "onnx_predict",
    "parity_metrics",
    "prepare_data",
    "regression_metrics",
    "to_onnx",
    "train",
    "tree_chunk",
    "with_calendar",
    "without_calendar",
]


@dataclass
class TrainingResult:
    estimator: Any
    onnx_model: Any
    feature_names: list[str]
    metrics: dict[str, float]
    X_test: np.ndarray
    y_test: np.ndarray
    y_pred_test: np.ndarray
    intervals: conformal.ConformalResult
    counts: dict[str, int] = field(default_factory=dict)
    # The estimator served (``params.estimator``, or the one ``auto`` chose).
    estimator_name: str = RANDOM_FOREST
    # The served estimator's backtest; ``None`` when the window holds too few rows for one (or ``backtest=0``).
    backtest: backtests.BacktestResult | None = None
    # With ``auto``: every candidate's backtest, best first.
    leaderboard: list[backtests.BacktestResult] = field(default_factory=list)
    importances: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # What the served model was fit on: the data given, or it without its calendar features where ``auto`` found
    # the calendar made the backtest worse. ``None`` only in results built by hand.
    data: PreparedData | None = None

    def backtest_record(self, params: TrainingParams) -> dict[str, Any]:
        """What the job keeps of the backtest (JSON): its folds and summary, and ``auto``'s leaderboard."""
        if self.backtest is None:
            return {}
        return {
            "gap": params.gap,
            **self.backtest.as_dict(),
            "leaderboard": [
                {"estimator": result.estimator, "calendar": result.calendar, **result.summary}
                for result in self.leaderboard
            ],
        }


def _no_progress(done: float) -> None:
    pass


# Shares of the fit after the backtest, measured at 100k rows with the bounded defaults: the served model, its twin
# (fit on fewer rows), calibration and holdout predictions, then the ONNX conversion and its check.
_SERVED, _TWIN, _CALIBRATED = 0.45, 0.8, 0.85
# Share of the whole taken by the backtest of each candidate (3 folds: about 1.5 fits of the served model).
_BACKTEST_SHARE = 0.3


def _span(progress: Progress, start: float, end: float) -> Progress:
    return lambda done: progress(start + (end - start) * done)


def train(data: PreparedData, params: TrainingParams, progress: Progress = _no_progress) -> TrainingResult:
    """Backtest the estimator (each candidate, with ``auto``) on the older rows, fit it on all of them, evaluate on
    the newest, calibrate the prediction intervals, convert to ONNX and measure the conversion on the holdout.

    ``progress`` hears the share done after each chunk of trees and each later step; whatever it raises stops
    the training there.

    Raises:
        TableError: too few rows for the splits, or ``backtest_too_many_folds``.
    """
    split = chronological_split(len(data.y), params.test_size)
    fit_end = calibration_split(split, params.calibration_size)
    k = backtests.folds_for(params, split)
    candidates = _candidates(params, data)
    backtest_share = min(0.6, _BACKTEST_SHARE * len(candidates)) if k else 0.0
    share = backtest_share / len(candidates)
    results = [
        backtests.backtest(name, served, split, params, k, _span(progress, index * share, (index + 1) * share))
        for index, (name, served) in enumerate(candidates)
        if k
    ]
    chosen = backtests.best(results) if results else None
    name = (
        chosen.estimator if chosen is not None else (RANDOM_FOREST if params.estimator == AUTO else params.estimator)
    )
    if chosen is not None:
        data = next(served for (_, served), result in zip(candidates, results, strict=True) if result is chosen)
    rest = _span(progress, backtest_share, 1.0)

    with openmp_threads(name, split):
        X_test, y_test = data.X[split:], data.y[split:]
        estimator = fit_estimator(name, data.X[:split], data.y[:split], params, _span(rest, 0.0, _SERVED))
        y_pred = np.asarray(estimator.predict(X_test), dtype=np.float64)
        # A twin, fit without the calibration slice, gives residuals on rows it never saw; the served model keeps the
        # whole training window, so calibrating costs its accuracy nothing (see training.conformal).
        twin = fit_estimator(name, data.X[:fit_end], data.y[:fit_end], params, _span(rest, _SERVED, _TWIN))
        intervals = conformal.calibrate(
            twin, data.X[fit_end:split], data.y[fit_end:split], estimator, X_test, y_test, y_pred
        )
        del twin
        rest(_CALIBRATED)
        onnx_model = to_onnx(estimator, len(data.feature_names))
        metrics = regression_metrics(y_test, y_pred) | parity_metrics(y_pred, onnx_predict(onnx_model, X_test))
        metrics |= intervals.metrics
        if chosen is not None:
            metrics |= chosen.metrics()
        importances = feature_importances(estimator, X_test, y_test, params.random_state)
    progress(1.0)
    return TrainingResult(
        estimator=estimator,
        onnx_model=onnx_model,
        feature_names=data.feature_names,
        metrics=metrics,
        X_test=X_test,
        y_test=y_test,
        y_pred_test=y_pred,
        intervals=intervals,
        counts={
            "n_train": int(split),
            "n_calibration": int(split - fit_end),
            "n_test": int(len(y_test)),
            "n_features": len(data.feature_names),
            "dropped_missing_target": data.dropped_missing_target,
            "backtest_folds": k,
        },
        estimator_name=name,
        backtest=chosen,
        leaderboard=sorted(results, key=lambda result: result.summary["rmse_mean"]) if len(results) > 1 else [],
        importances=importances,
        data=data,
    )


def _candidates(params: TrainingParams, data: PreparedData) -> list[tuple[str, PreparedData]]:
    """The estimators to backtest, each with the data it sees. ``auto`` tries every estimator; with calendar
    features it also tries today's default without them, first, so that ``auto`` + ``calendar=true`` serves the
    calendar only where the backtest finds it helps, and is never judged worse than the default by it."""
    if params.estimator != AUTO:
        return [(params.estimator, data)]
    candidates = [(name, data) for name in ESTIMATORS]
    plain = without_calendar(data)
    # A file whose only feature is its timestamp has nothing to fit without the calendar.
    if plain is not data and plain.feature_names:
        candidates.insert(0, (RANDOM_FOREST, plain))
    return candidates
