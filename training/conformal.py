"""Calibrate a fitted forest's prediction intervals and measure them on the holdout. No Django.

Split conformal prediction on time-ordered rows: a twin of the forest (same parameters and seed) is fit on the
older part of the training window, and its residuals on the newest part (the calibration slice, which it never
saw) give the scores. The served forest is fit on the whole window, so the intervals cost it no training rows;
having seen more (and more recent) rows, it errs a little less than its twin, which makes the intervals lean
conservative rather than short. The holdout, newer than both, measures the coverage and width the served
forest's intervals really have.

Two methods are calibrated (``core.intervals``): ``absolute`` (one width for every row) and ``scaled`` (wider
where the trees disagree). ``scaled`` is kept only if it narrows the intervals on the holdout at every recorded
level without losing coverage there (beyond the holdout's own sampling noise).

A few lines of numpy rather than ``mapie``: the trees' spread comes straight from the fitted forest, and serving
needs the raw scores in a file, not a library object.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from core.intervals import ABSOLUTE, LEVELS, SCALED, Calibration, calibration_scores, coverage_and_width, level_key


@dataclass
class ConformalResult:
    calibration: Calibration
    # Run metrics: holdout coverage and mean width of the chosen method at each level of ``LEVELS``.
    metrics: dict[str, float]
    # Both methods' holdout measurements, kept in the calibration file for whoever wonders why one was chosen.
    candidates: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return self.calibration.to_json(holdout=self.candidates)


def has_tree_spread(estimator) -> bool:
    """Whether ``estimator`` is a forest whose trees each predict the target (random forest, extra trees); boosted
    trees predict corrections to each other, whose spread means nothing."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    return isinstance(estimator, RandomForestRegressor | ExtraTreesRegressor)


def tree_predictions(estimator, X: np.ndarray) -> np.ndarray:
    """Each tree's predictions, one row per tree."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return np.stack([tree.tree_.predict(X).ravel() for tree in estimator.estimators_])


def calibrate(
    twin,
    X_cal: np.ndarray,
    y_cal: np.ndarray,
    estimator,
    X_test: np.ndarray,
    y_test: np.ndarray,
    y_pred_test: np.ndarray,
) -> ConformalResult:
    """Calibrate both methods with ``twin`` (fit without ``X_cal``) on ``X_cal``/``y_cal``, measure them around
    the served ``estimator``'s predictions on the holdout, and keep the better one. A model with no tree spread
    (gradient boosting) gets ``absolute`` only."""
    forest = has_tree_spread(estimator)
    if forest:
        cal_trees = tree_predictions(twin, X_cal)
        cal_pred, cal_spread = cal_trees.mean(axis=0), cal_trees.std(axis=0)
        test_spread = tree_predictions(estimator, X_test).std(axis=0)
    else:
        cal_pred = np.asarray(twin.predict(X_cal), dtype=np.float64)
        cal_spread = np.zeros(len(X_cal))
        test_spread = np.zeros(len(X_test))
    residuals = y_cal - cal_pred

    candidates = {ABSOLUTE: Calibration(ABSOLUTE, calibration_scores(residuals))}
    # The floor: the median spread, so a row where the trees happen to agree gets no more than half the
    # typical interval taken away. No spread at all (a constant target, one tree, boosting) leaves only `absolute`.
    scale_floor = float(np.median(cal_spread)) if forest else 0.0
    if scale_floor > 0:
        candidates[SCALED] = Calibration(SCALED, calibration_scores(residuals, cal_spread, scale_floor), scale_floor)

    measured = {
        method: {
            level_key(level): coverage_and_width(calibration, y_test, y_pred_test, test_spread, level)
            for level in LEVELS
            if level <= calibration.max_level
        }
        for method, calibration in candidates.items()
    }
    chosen = SCALED if SCALED in measured and _narrower_and_covering(measured, len(y_test)) else ABSOLUTE
    metrics = {}
    for key, values in measured[chosen].items():
        metrics[f"interval_coverage_{key}"] = values["coverage"]
        metrics[f"interval_mean_width_{key}"] = values["mean_width"]
    return ConformalResult(calibration=candidates[chosen], metrics=metrics, candidates=measured)


def _narrower_and_covering(measured: dict, n_test: int) -> bool:
    """Whether ``scaled`` is narrower than ``absolute`` at every level and keeps its coverage: at least the level
    (or what ``absolute`` covers, where that is less) minus one binomial standard error of a coverage measured
    on ``n_test`` rows, so holdout noise alone neither picks nor rules out a method."""
    absolute, scaled = measured[ABSOLUTE], measured[SCALED]
    levels = [level for level in LEVELS if level_key(level) in absolute]
    if not levels:
        return False
    for level in levels:
        key = level_key(level)
        if scaled[key]["mean_width"] >= absolute[key]["mean_width"]:
            return False
        noise = math.sqrt(level * (1 - level) / n_test)
        if scaled[key]["coverage"] < min(level, absolute[key]["coverage"]) - noise:
            return False
    return True


def holdout_half_widths(calibration: Calibration, estimator, X_test: np.ndarray, level: float) -> np.ndarray | None:
    """Half the width of each holdout row's interval at ``level`` (for plots); ``None`` past ``max_level``."""
    if level > calibration.max_level:
        return None
    spread = tree_predictions(estimator, X_test).std(axis=0) if calibration.needs_spread else None
    return np.broadcast_to(calibration.half_width(level, spread), (len(X_test),)).astype(np.float64)
