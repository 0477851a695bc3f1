"""The scikit-learn engine: a version's unpickled model, walked by scikit-learn; for a random forest also the
spread of its trees' predictions, and for a random forest or boosting each feature's contribution per row
(``inference.forest``)."""

from typing import Any, cast

import numpy as np

from ..forest import (
    boosted_path_sums,
    boosted_table,
    boosting_baseline,
    boosting_trees,
    forest_trees,
    mean_and_spread,
    path_sums,
    path_table,
    sum_of_trees,
    tree_moments,
)
from .pool import SPLIT_MIN_ROWS, executor


class SklearnEngine:
    format = "sklearn"

    def __init__(self, model: Any, nbytes: int):
        self.model = model
        # The pickle's size: what the cache's byte bound counts.
        self.nbytes = nbytes
        # ``None`` for a model that is not a single-output random forest: no moments, no contributions.
        self.trees = forest_trees(model)
        self._path_tables: list | None = None
        # ``None`` unless a boosting model: its rounds' trees, which explain but have no meaningful spread.
        self.boosted = boosting_trees(model)

    @property
    def explainable(self) -> bool:
        """Whether ``contributions`` answers: a single-output random forest, or boosting with an identity link."""
        return self.trees is not None or self.boosted is not None

    def predict(self, X: np.ndarray, threads: int) -> np.ndarray:
        """scikit-learn's predictions, to the bit; a large batch's trees are split across ``threads``.

        ``RandomForestRegressor.predict`` dispatches every tree through joblib and validates the input once per
        tree; summing each thread's share of ``tree_.predict`` is the same arithmetic at ~2/3 of the time.
        """
        trees = self.trees
        if trees is None or threads <= 1 or len(X) < SPLIT_MIN_ROWS:
            return np.asarray(self.model.predict(X), dtype=np.float64).ravel()
        X = np.ascontiguousarray(X, dtype=np.float32)
        shares = executor(threads).map(sum_of_trees, [trees[i::threads] for i in range(threads)], [X] * threads)
        return cast(np.ndarray, sum(shares)) / len(trees)

    def moments(self, X: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """The forest's predictions and the spread of its trees' predictions, in one pass over the trees."""
        trees = self._forest_trees()
        X = np.ascontiguousarray(X, dtype=np.float32)
        if threads <= 1 or len(X) < SPLIT_MIN_ROWS:
            return mean_and_spread([tree_moments(trees, X)])
        shares = [trees[i::threads] for i in range(threads)]
        return mean_and_spread(list(executor(threads).map(tree_moments, shares, [X] * threads)))

    def contributions(self, X: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
        """The model's base value and each feature's contribution per row (``inference.forest``).

        Raises ``CategoricalSplits`` for boosting that splits on a categorical feature.
        """
        if self.trees is None and self.boosted is not None:
            return self._boosted_contributions(X, threads)
        trees = self._forest_trees()
        if self._path_tables is None:
            # Built once per version (~50 ms for 100 full-depth trees); concurrent first requests may both build.
            self._path_tables = [path_table(tree) for tree in trees]
        tables = self._path_tables
        threads = max(1, min(threads, len(trees)))
        shares = [(trees[i::threads], tables[i::threads]) for i in range(threads)]
        parts = list(executor(threads).map(lambda share: path_sums(share[0], share[1], X), shares))
        base = sum(part[0] for part in parts) / len(trees)
        return base, cast(np.ndarray, sum(part[1] for part in parts)) / len(trees)

    def _boosted_contributions(self, X: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
        """Boosting's: its trees are summed, not averaged, on top of its baseline."""
        boosted = cast(list, self.boosted)
        if self._path_tables is None:
            self._path_tables = [boosted_table(predictor) for predictor in boosted]
        tables = self._path_tables
        threads = max(1, min(threads, len(tables)))
        if threads == 1 or len(X) < SPLIT_MIN_ROWS:
            roots, total = boosted_path_sums(tables, X)
            return boosting_baseline(self.model) + roots, total
        parts = list(
            executor(threads).map(boosted_path_sums, [tables[i::threads] for i in range(threads)], [X] * threads)
        )
        base = boosting_baseline(self.model) + sum(part[0] for part in parts)
        return base, cast(np.ndarray, sum(part[1] for part in parts))

    def _forest_trees(self) -> list:
        if self.trees is None:
            raise TypeError("Moments and contributions need a single-output random forest.")
        return self.trees
