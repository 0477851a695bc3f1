"""The ML core: prepare a time-series table, fit a random forest, convert it to ONNX, measure both. No Django.

Rows are ordered by timestamp and the holdout is the most recent ``test_size`` share, so the reported metrics
say how the model does on the future rather than on shuffled neighbours of its training rows. The forest is fit on
the rest (the training window), whose newest ``calibration_size`` share also calibrates the prediction intervals
(``training.conformal``).
"""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import quoted
from core.tabular import TableError, feature_matrix, require_columns, row_number

from . import conformal

# Fewer rows than this cannot give both a training set and a holdout worth a metric.
MIN_ROWS = 10
MIN_HOLDOUT_ROWS = 2


@dataclass(frozen=True)
class TrainingParams:
    n_estimators: int = 100
    max_depth: int | None = None
    # Leaves per tree and bootstrap rows per tree; left open, the training fills them in from a size budget
    # (training.sizing.bounded_params).
    max_leaf_nodes: int | None = None
    max_samples: int | None = None
    random_state: int = 42
    test_size: float = 0.2
    calibration_size: float = 0.2

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "max_leaf_nodes": self.max_leaf_nodes,
            "max_samples": self.max_samples,
            "random_state": self.random_state,
            "test_size": self.test_size,
            "calibration_size": self.calibration_size,
        }


@dataclass
class PreparedData:
    """Features, target and timestamps of the usable rows, in time order."""

    X: np.ndarray
    y: np.ndarray
    timestamps: pd.Series
    feature_names: list[str]
    dropped_missing_target: int = 0


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


def prepare_data(frame: pd.DataFrame, *, target: str, timestamp: str) -> PreparedData:
    """Check a raw table and turn it into time-ordered float32 features and a float64 target.

    Raises:
        TableError: naming the missing column, the bad cell, or why there are too few rows.
    """
    require_columns(frame.columns, [timestamp, target])
    feature_names = [column for column in frame.columns if column not in (timestamp, target)]
    if not feature_names:
        raise TableError(
            f"No feature column: the file has only {quoted(timestamp)} and {quoted(target)}.", code="no_features"
        )
    target_values = pd.to_numeric(frame[target], errors="coerce")
    given = frame[target].notna() & (frame[target].astype(str).str.strip() != "")
    infinite = np.isinf(target_values.to_numpy(dtype="float64", na_value=np.nan))
    bad_target = (target_values.isna() & given) | infinite
    if bad_target.any():
        position = int(np.flatnonzero(bad_target.to_numpy())[0])
        row, cell = row_number(frame, position), frame[target].iloc[position]
        raise TableError(
            f"Column {quoted(target)}, row {row}: {quoted(cell)} is not a finite number.",
            code="bad_cell",
            extra={"column": target, "row": row},
        )
    has_target = target_values.notna().to_numpy()
    dropped = int((~has_target).sum())
    frame = frame.loc[has_target]
    target_values = target_values[has_target]

    timestamps = pd.to_datetime(frame[timestamp], errors="coerce", format="mixed", utc=True)
    if timestamps.isna().any():
        position = int(np.flatnonzero(timestamps.isna().to_numpy())[0])
        row = row_number(frame, position)
        raise TableError(
            f"Column {quoted(timestamp)}, row {row}: {quoted(frame[timestamp].iloc[position])} is not a date or time.",
            code="bad_timestamp",
            extra={"column": timestamp, "row": row},
        )
    X = feature_matrix(frame, feature_names)
    if len(frame) < MIN_ROWS:
        raise TableError(
            f"Too few rows with a {quoted(target)} value: {len(frame)}; at least {MIN_ROWS} are needed.",
            code="too_few_rows",
            extra={"rows": len(frame), "min_rows": MIN_ROWS, "dropped_missing_target": dropped},
        )
    order = np.argsort(timestamps.to_numpy(), kind="stable")
    return PreparedData(
        X=X[order],
        y=target_values.to_numpy(dtype="float64")[order],
        timestamps=timestamps.iloc[order].reset_index(drop=True),
        feature_names=feature_names,
        dropped_missing_target=dropped,
    )


def chronological_split(n_samples: int, test_size: float) -> int:
    """Index of the first holdout row: the last ``test_size`` share of time-ordered rows is held out."""
    n_test = max(MIN_HOLDOUT_ROWS, int(round(n_samples * test_size)))
    if n_samples - n_test < MIN_HOLDOUT_ROWS:
        raise TableError(
            f"test_size={test_size} leaves too few training rows out of {n_samples}.", code="too_few_rows"
        )
    return n_samples - n_test


def calibration_split(n_window: int, calibration_size: float) -> int:
    """Index of the first calibration row: the newest ``calibration_size`` share of the training window."""
    n_calibration = max(1, int(round(n_window * calibration_size)))
    if n_window - n_calibration < MIN_HOLDOUT_ROWS:
        raise TableError(
            f"calibration_size={calibration_size} leaves too few rows to fit the forest on out of {n_window}.",
            code="too_few_rows",
        )
    return n_window - n_calibration


# Called with the share of the work done (0-1); it may raise to stop the training there (a cancelled job).
Progress = Callable[[float], None]


def _no_progress(done: float) -> None:
    pass


def tree_chunk(n_estimators: int) -> int:
    """Trees grown per step: about a tenth of the forest, and at least one per core so each step uses them all."""
    return max(os.cpu_count() or 1, math.ceil(n_estimators / 10))


def fit_random_forest(X: np.ndarray, y: np.ndarray, params: TrainingParams, progress: Progress = _no_progress):
    """Grow the forest a chunk of trees at a time (``warm_start``), reporting after each chunk.

    Growing in chunks gives the same forest as one ``fit``: sklearn draws every tree's seed from ``random_state``
    in order, whatever the steps.
    """
    from sklearn.ensemble import RandomForestRegressor

    estimator = RandomForestRegressor(
        n_estimators=0,
        max_depth=params.max_depth,
        max_leaf_nodes=params.max_leaf_nodes,
        max_samples=params.max_samples,
        random_state=params.random_state,
        n_jobs=-1,
        warm_start=True,
    )
    step = tree_chunk(params.n_estimators)
    for grown in range(step, params.n_estimators + step, step):
        estimator.set_params(n_estimators=min(grown, params.n_estimators))
        estimator.fit(X, y)
        progress(len(estimator.estimators_) / params.n_estimators)
    # Served and pickled as a plain forest: a later fit on it starts afresh.
    return estimator.set_params(warm_start=False)


def to_onnx(estimator, n_features: int):
    """Convert a fitted forest to ONNX with a float32 input named ``input`` (rows × ``n_features``)."""
    from skl2onnx import to_onnx as skl_to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    return skl_to_onnx(
        estimator,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def onnx_predict(onnx_model, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X.astype(np.float32, copy=False)})[0].ravel()


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "r2": float(r2_score(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
    }


def parity_metrics(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """How far ONNX (float32) predictions stray from sklearn's: max absolute and max relative difference."""
    diff = np.abs(candidate.astype(np.float64) - reference)
    scale = np.maximum(np.abs(reference), np.finfo(np.float32).tiny)
    return {
        "onnx_max_abs_diff": float(diff.max(initial=0.0)),
        "onnx_max_rel_diff": float((diff / scale).max(initial=0.0)),
    }


# Shares of train()'s work, measured at 100k rows with the bounded defaults: the served forest, its twin (fit on
# fewer rows), calibration and holdout predictions, then the ONNX conversion and its check.
_SERVED, _TWIN, _CALIBRATED = 0.45, 0.8, 0.85


def train(data: PreparedData, params: TrainingParams, progress: Progress = _no_progress) -> TrainingResult:
    """Fit on the older rows, evaluate on the newest, calibrate the prediction intervals, convert to ONNX and
    measure the conversion on the holdout.

    ``progress`` hears the share done after each chunk of trees and each later step; whatever it raises stops
    the training there.
    """
    split = chronological_split(len(data.y), params.test_size)
    fit_end = calibration_split(split, params.calibration_size)
    X_test, y_test = data.X[split:], data.y[split:]
    estimator = fit_random_forest(data.X[:split], data.y[:split], params, lambda done: progress(_SERVED * done))
    y_pred = estimator.predict(X_test)
    # A twin forest, fit without the calibration slice, gives residuals on rows it never saw; the served forest
    # keeps the whole training window, so calibrating costs its accuracy nothing (see training.conformal).
    twin = fit_random_forest(
        data.X[:fit_end], data.y[:fit_end], params, lambda done: progress(_SERVED + (_TWIN - _SERVED) * done)
    )
    intervals = conformal.calibrate(
        twin,
        data.X[fit_end:split],
        data.y[fit_end:split],
        estimator,
        X_test,
        y_test,
        np.asarray(y_pred, dtype=np.float64),
    )
    del twin
    progress(_CALIBRATED)
    onnx_model = to_onnx(estimator, len(data.feature_names))
    metrics = regression_metrics(y_test, y_pred) | parity_metrics(y_pred, onnx_predict(onnx_model, X_test))
    metrics |= intervals.metrics
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
        },
    )
