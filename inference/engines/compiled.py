"""The compiled-walk engine: a forest's trees packed for ``inference.compiled_forest``, scikit-learn's predictions
to the bit at about twice its rows per second. It serves the ``sklearn`` format wherever the walk is built."""

import numpy as np

from ..compiled_forest import CompiledForest, compile_forest
from ..forest import mean_and_spread
from .pool import SPLIT_MIN_ROWS, executor

# The walk takes ~7 µs a row on 100 full-depth trees; a thread's hand-off, ~50 µs, is worth it from here.
COMPILED_SPLIT_MIN_ROWS = 64


class CompiledForestEngine:
    format = "sklearn"
    # Packed from the pickle, whose size (counted by the ``SklearnEngine`` beside it) bounds it: about a third.
    nbytes = 0

    def __init__(self, forest: CompiledForest):
        self.forest = forest

    @classmethod
    def packed(cls, trees: list, n_features: int) -> "CompiledForestEngine | None":
        """The engine over fitted ``tree_`` objects, or ``None`` where the walk is not built or cannot serve them."""
        forest = compile_forest(trees, n_features)
        return cls(forest) if forest is not None else None

    def predict(self, X: np.ndarray, threads: int) -> np.ndarray:
        forest = self.forest
        X = np.ascontiguousarray(X, dtype=np.float32)
        if threads <= 1 or len(X) < 2 * COMPILED_SPLIT_MIN_ROWS:
            return forest.sum_of_trees(X) / forest.n_trees
        parts = executor(threads).map(forest.sum_of_trees, np.array_split(X, threads))
        return np.concatenate(list(parts)) / forest.n_trees

    def moments(self, X: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """The forest's predictions and the spread of its trees' predictions, in one walk."""
        forest = self.forest
        X = np.ascontiguousarray(X, dtype=np.float32)
        if threads <= 1 or len(X) < SPLIT_MIN_ROWS:
            return mean_and_spread([forest.tree_moments(X)])
        parts = list(executor(threads).map(forest.tree_moments, np.array_split(X, threads)))
        joined = (
            forest.n_trees,
            np.concatenate([part[1] for part in parts]),
            np.concatenate([part[2] for part in parts]),
        )
        return mean_and_spread([joined])
