"""The options of one training, as the request gives them and the job stores them (JSON). No Django."""

from dataclasses import asdict, dataclass
from typing import Any

RANDOM_FOREST = "random_forest"
EXTRA_TREES = "extra_trees"
HIST_GRADIENT_BOOSTING = "hist_gradient_boosting"
# Picks one of the above by backtest error (training.ml.backtest.leaderboard).
AUTO = "auto"
ESTIMATORS = (RANDOM_FOREST, EXTRA_TREES, HIST_GRADIENT_BOOSTING)
ESTIMATOR_CHOICES = (*ESTIMATORS, AUTO)


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
    # One of ESTIMATOR_CHOICES.
    estimator: str = RANDOM_FOREST
    # Rolling-origin folds over the training window; ``None`` takes the default for the rows
    # (training.ml.backtest.default_folds), 0 skips the backtest.
    backtest: int | None = None
    # Rows left out between each fold's training rows and the rows it is scored on (a forecast made ``gap`` rows
    # ahead of its newest known target).
    gap: int = 0
    # Derive hour of day, day of week, day of year and month (sin/cos pairs) from the timestamp as features.
    calendar: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
