"""What a fitted forest says per row beyond its prediction: how much its trees disagree, and why it predicts
what it does. Pure numpy over scikit-learn's ``tree_`` arrays; no Django.

- **Spread** (for scaled prediction intervals): the population standard deviation of the trees' predictions,
  accumulated in the same pass over the trees that sums the prediction, a share of the trees per thread.
- **Contributions** (Saabas' path decomposition): in each tree a row's prediction is the root's value plus, at
  every split on its path, the change of the node value; the change is credited to the split's feature. Averaged
  over the trees: ``base + sum(contributions) == prediction`` exactly up to float rounding. The cost is one
  root-to-leaf path per row and tree, linear in depth (TreeSHAP is quadratic in depth, and hangs on unbounded
  forests).
- **Boosting** (``HistGradientBoostingRegressor``): the same decomposition over its ``TreePredictor`` node arrays.
  Its internal nodes' stored values are not the count-weighted means of their leaves, so each internal node's
  value is recomputed bottom-up from its children's. Boosting *sums* its trees on top of a baseline:
  ``baseline + sum(root values) + sum(contributions) == prediction``, with no division by the tree count.
"""

from dataclasses import dataclass
from typing import cast

import numpy as np


def forest_trees(model) -> list | None:
    """The fitted trees of a single-output random forest (or extra-trees) regressor, else ``None``."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    if isinstance(model, RandomForestRegressor | ExtraTreesRegressor) and model.n_outputs_ == 1:
        return [estimator.tree_ for estimator in model.estimators_]
    return None


def sum_of_trees(trees: list, X: np.ndarray) -> np.ndarray:
    total = np.zeros(len(X), dtype=np.float64)
    for tree in trees:
        total += tree.predict(X).ravel()
    return total


def tree_moments(trees: list, X: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, sum, and sum of squared deviations from their mean, of ``trees``' predictions for each row.

    The squares are taken about the first tree's prediction, not zero: targets far from zero with a small spread
    (1e9 ± 10) would lose the spread to cancellation otherwise.
    """
    total = np.zeros(len(X), dtype=np.float64)
    shifted = np.zeros(len(X), dtype=np.float64)
    shifted_sq = np.zeros(len(X), dtype=np.float64)
    reference = None
    for tree in trees:
        prediction = tree.predict(X).ravel()
        total += prediction
        if reference is None:
            reference = prediction
            continue
        deviation = prediction - reference
        shifted += deviation
        shifted_sq += deviation * deviation
    count = len(trees)
    return count, total, shifted_sq - shifted * shifted / max(count, 1)


def mean_and_spread(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Combine ``tree_moments`` of disjoint shares of the trees into the forest's prediction and spread."""
    count = sum(part[0] for part in parts)
    # ``parts`` is never empty, so the sum is an array, not ``sum``'s start 0.
    mean = cast(np.ndarray, sum(part[1] for part in parts)) / count
    squares = sum(part[2] + part[0] * (part[1] / part[0] - mean) ** 2 for part in parts if part[0])
    return mean, np.sqrt(np.maximum(squares / count, 0.0))


@dataclass(frozen=True)
class PathTable:
    """Per node of one tree: the change of value from its parent, and the feature its parent splits on."""

    delta: np.ndarray
    feature: np.ndarray
    root_value: float


def path_table(tree) -> PathTable:
    """The table of ``tree`` (a fitted ``tree_``); node 0 is the root, with no change and no feature."""
    value = tree.value[:, 0, 0].astype(np.float64)
    left, right = tree.children_left, tree.children_right
    parent = np.full(tree.node_count, -1, dtype=np.intp)
    internal = np.flatnonzero(left >= 0)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    has_parent = parent >= 0
    delta = np.zeros(tree.node_count, dtype=np.float64)
    delta[has_parent] = value[has_parent] - value[parent[has_parent]]
    feature = np.zeros(tree.node_count, dtype=np.intp)
    feature[has_parent] = tree.feature[parent[has_parent]]
    return PathTable(delta=delta, feature=feature, root_value=float(value[0]))


def path_sums(trees: list, tables: list[PathTable], X: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed over ``trees``: the root values, and each feature's contribution for each row of ``X`` (rows x
    features). Divided by the forest's tree count they are its base value and contributions."""
    n_rows, n_features = X.shape
    X = np.ascontiguousarray(X, dtype=np.float32)
    total = np.zeros(n_rows * n_features, dtype=np.float64)
    for tree, table in zip(trees, tables, strict=True):
        path = tree.decision_path(X)
        rows = np.repeat(np.arange(n_rows, dtype=np.intp), np.diff(path.indptr))
        nodes = path.indices
        total += np.bincount(
            rows * n_features + table.feature[nodes], weights=table.delta[nodes], minlength=n_rows * n_features
        )
    return sum(table.root_value for table in tables), total.reshape(n_rows, n_features)


class CategoricalSplits(ValueError):
    """A boosted tree splits on a categorical feature: its path through a bitset has no threshold to walk."""


def boosting_trees(model) -> list | None:
    """The ``TreePredictor`` of each round of a single-output ``HistGradientBoostingRegressor`` whose prediction
    is its raw sum (identity link), else ``None``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if not isinstance(model, HistGradientBoostingRegressor) or model.n_trees_per_iteration_ != 1:
        return None
    if type(model._loss.link).__name__ != "IdentityLink":
        return None
    return [predictors[0] for predictors in model._predictors]


def boosting_baseline(model) -> float:
    """What a ``HistGradientBoostingRegressor`` predicts before its first tree."""
    return float(np.asarray(model._baseline_prediction, dtype=np.float64).ravel()[0])


@dataclass(frozen=True)
class BoostedTable:
    """One boosted tree's arrays for the walk, and per node the change of its value from its parent's (the
    values recomputed as count-weighted means of the leaves below)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    is_leaf: np.ndarray
    delta: np.ndarray
    root_value: float


def boosted_table(predictor) -> BoostedTable:
    """The table of one ``TreePredictor``; raises ``CategoricalSplits`` if any of its splits is categorical."""
    nodes = predictor.nodes
    if np.any(nodes["is_categorical"]):
        raise CategoricalSplits("a boosted tree splits on a categorical feature")
    is_leaf = nodes["is_leaf"].astype(bool)
    left = nodes["left"].astype(np.intp)
    right = nodes["right"].astype(np.intp)
    count = nodes["count"].astype(np.float64)
    n_nodes = len(nodes)
    # Depth of each node, level by level from the root.
    depth = np.zeros(n_nodes, dtype=np.intp)
    level = np.zeros(1, dtype=np.intp)
    parent = np.full(n_nodes, -1, dtype=np.intp)
    while len(level):
        level = level[~is_leaf[level]]
        children = np.concatenate([left[level], right[level]])
        parent[children] = np.concatenate([level, level])
        depth[children] = depth[np.concatenate([level, level])] + 1
        level = children
    value = np.where(is_leaf, nodes["value"].astype(np.float64), 0.0)
    for d in range(int(depth.max()) - 1, -1, -1):
        internal = np.flatnonzero((depth == d) & ~is_leaf)
        lc, rc = left[internal], right[internal]
        weight = count[lc] + count[rc]
        weighted = (count[lc] * value[lc] + count[rc] * value[rc]) / np.where(weight > 0, weight, 1.0)
        value[internal] = np.where(weight > 0, weighted, (value[lc] + value[rc]) / 2)
    has_parent = parent >= 0
    delta = np.zeros(n_nodes, dtype=np.float64)
    delta[has_parent] = value[has_parent] - value[parent[has_parent]]
    return BoostedTable(
        left=left,
        right=right,
        feature=nodes["feature_idx"].astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        is_leaf=is_leaf,
        delta=delta,
        root_value=float(value[0]),
    )


def boosted_path_sums(tables: list[BoostedTable], X: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed over boosted ``tables``: the root values, and each feature's contribution for each row of ``X``
    (rows x features). Plus the model's baseline they are its base value; the contributions are as they are.

    Every row is walked at once, a level of the tree per step, as scikit-learn does: left where
    ``x <= threshold``, and a missing (NaN) value where the split sends missing values.
    """
    X = np.asarray(X, dtype=np.float64)
    n_rows = len(X)
    total = np.zeros(X.shape, dtype=np.float64)
    for table in tables:
        rows = np.arange(n_rows, dtype=np.intp)
        node = np.zeros(n_rows, dtype=np.intp)
        while len(rows):
            inner = ~table.is_leaf[node]
            rows, node = rows[inner], node[inner]
            feature = table.feature[node]
            x = X[rows, feature]
            go_left = np.where(np.isnan(x), table.missing_left[node], x <= table.threshold[node])
            node = np.where(go_left, table.left[node], table.right[node])
            # Each row once per level: no repeated (row, feature) pair in one step.
            total[rows, feature] += table.delta[node]
    return sum(table.root_value for table in tables), total
