"""The compiled forest walk: scikit-learn's predictions to the bit, for every shape of forest the product serves."""

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

from inference.compiled_forest import compile_forest, walk_library
from inference.forest import forest_trees, tree_moments

pytestmark = pytest.mark.skipif(walk_library() is None, reason="the compiled walk is not built (make install)")


def fitted(estimator, *, rows=2000, n_features=8, seed=0, constant=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, n_features)).astype(np.float32)
    y = np.zeros(rows) if constant else np.sin(X[:, 0]) + X[:, -1] * X[:, 0] + rng.normal(scale=0.3, size=rows)
    return estimator.fit(X, y * 1000 + 5e6)


def walk(model, X):
    compiled = compile_forest(forest_trees(model), model.n_features_in_)
    return compiled.sum_of_trees(np.ascontiguousarray(X, dtype=np.float32)) / compiled.n_trees


@pytest.mark.parametrize(
    "model",
    [
        fitted(RandomForestRegressor(20, random_state=0)),
        fitted(RandomForestRegressor(20, max_depth=3, random_state=1)),
        fitted(RandomForestRegressor(10, max_leaf_nodes=50, max_samples=0.5, random_state=2)),
        fitted(ExtraTreesRegressor(10, random_state=3)),
        fitted(RandomForestRegressor(5, random_state=4), n_features=1),
        fitted(RandomForestRegressor(3, random_state=5), constant=True),
    ],
    ids=["full-depth", "depth-3", "bounded", "extra-trees", "one-feature", "single-leaf-trees"],
)
@pytest.mark.parametrize("rows", [1, 31, 32, 33, 1000])
def test_the_walk_gives_sklearns_predictions_to_the_bit(model, rows):
    X = np.random.default_rng(rows).normal(scale=1.5, size=(rows, model.n_features_in_)).astype(np.float32)

    assert np.array_equal(walk(model, X), model.predict(X))


def test_rows_on_and_beside_every_threshold_go_where_sklearns_double_thresholds_send_them():
    # given: for every split, the float32 values just below, at and just above its (double) threshold
    model = fitted(RandomForestRegressor(5, random_state=0), rows=500)
    rows = []
    for tree in forest_trees(model):
        internal = tree.children_left >= 0
        for feature, threshold in zip(tree.feature[internal], tree.threshold[internal], strict=True):
            at = np.float32(threshold)
            for value in (np.nextafter(at, np.float32(-np.inf)), at, np.nextafter(at, np.float32(np.inf))):
                row = np.zeros(model.n_features_in_, dtype=np.float32)
                row[feature] = value
                rows.append(row)
    X = np.array(rows)

    # then
    assert len(X) > 1000
    assert np.array_equal(walk(model, X), model.predict(X))


def test_extreme_values_take_the_outermost_branches_as_in_sklearn():
    model = fitted(RandomForestRegressor(5, random_state=0))
    big = np.finfo(np.float32).max
    X = np.array([[big] * 8, [-big] * 8, [0.0] * 8, [1e-45] * 8], dtype=np.float32)

    assert np.array_equal(walk(model, X), model.predict(X))


def test_without_the_built_library_nothing_is_compiled(no_compiled_walk):
    assert compile_forest(forest_trees(fitted(RandomForestRegressor(2))), 8) is None


@pytest.mark.parametrize("rows", [1, 33, 1000])
def test_the_walks_tree_moments_are_those_of_sklearns_trees_to_the_bit(rows):
    # given: a target far from zero with a small spread, where a naive sum of squares would cancel
    model = fitted(RandomForestRegressor(15, random_state=0))
    X = np.random.default_rng(rows).normal(size=(rows, 8)).astype(np.float32)
    trees = forest_trees(model)

    # when
    count, total, squares = compile_forest(trees, 8).tree_moments(X)

    # then
    expected = tree_moments(trees, X)
    assert count == expected[0] == 15
    assert np.array_equal(total, expected[1]) and np.array_equal(squares, expected[2])
    assert squares.min() > 0


def test_the_walk_refuses_a_matrix_it_would_misread():
    compiled = compile_forest(forest_trees(fitted(RandomForestRegressor(2))), 8)

    for X in (np.zeros((3, 8)), np.zeros((3, 7), np.float32), np.zeros((8, 3), np.float32).T):
        with pytest.raises(ValueError, match="float32 matrix of 8 columns"):
            compiled.sum_of_trees(X)
