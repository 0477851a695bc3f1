"""The estimators a training may grow, fit a chunk at a time, and their ONNX conversion and measures. No Django.

- ``random_forest``: bootstrap trees with the best split at each node (the original default).
- ``extra_trees``: random split thresholds; faster to grow, often smoother on noisy series. Served like a
  random forest (the same sklearn trees: the compiled walk, tree spread, explanations).
- ``hist_gradient_boosting``: boosted shallow trees on binned features; fast on large data. Its trees are not
  sklearn ``Tree`` objects, so it serves through ONNX or its own ``predict``, with ``absolute`` intervals only;
  ``inference.forest`` explains it from its own node arrays.
"""

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .params import EXTRA_TREES, HIST_GRADIENT_BOOSTING, RANDOM_FOREST, TrainingParams

# Called with the share of the work done (0-1); it may raise to stop the training there (a cancelled job).
Progress = Callable[[float], None]

# Leaves per boosted tree: scikit-learn's default. The size budget's share per tree (thousands of leaves, sized
# for a forest's deep trees) would overfit every boosting round; a smaller ``max_leaf_nodes`` still applies.
HGB_MAX_LEAF_NODES = 31
# Below this many rows boosting runs on one OpenMP thread: on a busy 2-vCPU machine its threads spin waiting for
# each other, and a 730-row fit took 13 s on all cores against 0.26 s on one (measured with 100 rounds).
HGB_PARALLEL_MIN_ROWS = 50_000


@contextmanager
def openmp_threads(name: str, n_rows: int) -> Iterator[None]:
    """Where estimator ``name`` fits or predicts on ``n_rows`` rows: boosting on small data on one thread."""
    if name != HIST_GRADIENT_BOOSTING or n_rows >= HGB_PARALLEL_MIN_ROWS:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def no_progress(done: float) -> None:
    pass


def tree_chunk(n_estimators: int) -> int:
    """Trees grown per step: about a tenth of the forest, and at least one per core so each step uses them all."""
    return max(os.cpu_count() or 1, math.ceil(n_estimators / 10))


def make_estimator(name: str, params: TrainingParams) -> Any:
    """An unfitted estimator ``name`` with ``params``, set to grow by ``warm_start`` from zero trees."""
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor

    if name == HIST_GRADIENT_BOOSTING:
        return HistGradientBoostingRegressor(
            max_iter=1,
            max_depth=params.max_depth,
            max_leaf_nodes=min(params.max_leaf_nodes or HGB_MAX_LEAF_NODES, HGB_MAX_LEAF_NODES),
            # Its validation split would be random rows, not the newest: the backtest judges it instead.
            early_stopping=False,
            random_state=params.random_state,
            warm_start=True,
        )
    forest = {RANDOM_FOREST: RandomForestRegressor, EXTRA_TREES: ExtraTreesRegressor}[name]
    options: dict[str, Any] = {}
    if name == EXTRA_TREES:
        # Extra trees use every row by default; on big data each tree draws ``max_samples`` of them, as a random
        # forest's does, which bounds the fit time the same way.
        options["bootstrap"] = params.max_samples is not None
    return forest(
        n_estimators=0,
        max_depth=params.max_depth,
        max_leaf_nodes=params.max_leaf_nodes,
        max_samples=params.max_samples,
        random_state=params.random_state,
        n_jobs=-1,
        warm_start=True,
        **options,
    )


def fit_estimator(
    name: str, X: np.ndarray, y: np.ndarray, params: TrainingParams, progress: Progress = no_progress
) -> Any:
    """Grow estimator ``name`` a chunk of trees (boosting rounds) at a time (``warm_start``), reporting after each.

    Growing in chunks gives the same model as one ``fit``: sklearn draws every tree's seed from ``random_state``
    in order, whatever the steps.
    """
    estimator = make_estimator(name, params)
    size = "max_iter" if name == HIST_GRADIENT_BOOSTING else "n_estimators"
    step = tree_chunk(params.n_estimators)
    for grown in range(step, params.n_estimators + step, step):
        estimator.set_params(**{size: min(grown, params.n_estimators)})
        estimator.fit(X, y)
        progress(min(grown, params.n_estimators) / params.n_estimators)
    # Served and pickled as a plain model: a later fit on it starts afresh.
    return estimator.set_params(warm_start=False)


def fit_random_forest(X: np.ndarray, y: np.ndarray, params: TrainingParams, progress: Progress = no_progress):
    return fit_estimator(RANDOM_FOREST, X, y, params, progress)


def feature_importances(estimator, X: np.ndarray, y: np.ndarray, random_state: int) -> np.ndarray:
    """The forest's impurity importances; for boosting (which has none) the permutation importance on ``X``/``y``
    (at most 2000 rows, 3 repeats), clipped at zero."""
    if hasattr(estimator, "feature_importances_"):
        return np.asarray(estimator.feature_importances_, dtype=np.float64)
    from sklearn.inspection import permutation_importance

    rows = np.linspace(0, len(X) - 1, min(len(X), 2000)).astype(int)
    found = permutation_importance(estimator, X[rows], y[rows], n_repeats=3, random_state=random_state)
    return np.maximum(np.asarray(found.importances_mean, dtype=np.float64), 0.0)


def _install_hgb_conversion_fix() -> None:
    """skl2onnx 1.20 passes a Python ``False`` for a boosted tree's leaves in ``nodes_missing_value_tracks_true``,
    which onnx ≥ 1.17 refuses in an integer attribute ("Expected an int, got a boolean"): converting any
    ``HistGradientBoostingRegressor`` fails. The node writer is wrapped once to give it ``0``/``1``."""
    from skl2onnx.common import tree_ensemble

    add_node = tree_ensemble.add_node
    if getattr(add_node, "mds_int_flags", False):
        return

    def add_node_int_flags(*args, nodes_missing_value_tracks_true=0, **kwargs):
        return add_node(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    add_node_int_flags.mds_int_flags = True  # type: ignore[attr-defined]
    tree_ensemble.add_node = add_node_int_flags


def to_onnx(estimator, n_features: int):
    """Convert a fitted model to ONNX with a float32 input named ``input`` (rows × ``n_features``)."""
    from skl2onnx import to_onnx as skl_to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    _install_hgb_conversion_fix()
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
