"""inference.forest: the trees' spread in one pass, and the path decomposition of a forest's prediction."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from inference.forest import forest_trees, mean_and_spread, path_sums, path_table, tree_moments
from tests.factories import weather_frame


@pytest.fixture(scope="module")
def forest():
    frame = weather_frame(300)
    X, y = frame.iloc[:, 1:-1].to_numpy(np.float32), frame["target"].to_numpy()
    return RandomForestRegressor(n_estimators=12, random_state=0).fit(X, y), X


def per_tree(model, X):
    return np.stack([tree.predict(X).ravel() for tree in forest_trees(model)])


@pytest.mark.parametrize("shares", [1, 2, 5])
def test_spread_from_shares_of_the_trees_is_the_trees_standard_deviation(forest, shares):
    # given
    model, X = forest
    trees = forest_trees(model)

    # when
    mean, spread = mean_and_spread([tree_moments(trees[i::shares], X) for i in range(shares)])

    # then
    every = per_tree(model, X)
    np.testing.assert_allclose(mean, model.predict(X), rtol=1e-12)
    np.testing.assert_allclose(spread, every.std(axis=0), rtol=1e-9, atol=1e-9)


def test_spread_survives_targets_far_from_zero(forest):
    # given: the same forest's predictions moved by 1e9 (a naive sum of squares loses the spread there)
    model, X = forest

    class Shifted:
        def __init__(self, tree):
            self.tree = tree

        def predict(self, X):
            return self.tree.predict(X).ravel() + 1e9

    trees = [Shifted(tree) for tree in forest_trees(model)]

    # when
    _, spread = mean_and_spread([tree_moments(trees[i::2], X) for i in range(2)])

    # then
    np.testing.assert_allclose(spread, per_tree(model, X).std(axis=0), rtol=1e-5, atol=1e-5)


def test_path_contributions_add_up_to_each_tree_and_to_the_forest(forest):
    # given
    model, X = forest
    trees = forest_trees(model)
    tables = [path_table(tree) for tree in trees]

    # when
    roots, totals = path_sums(trees, tables, X)

    # then
    explained = (roots + totals.sum(axis=1)) / len(trees)
    np.testing.assert_allclose(explained, model.predict(X), rtol=0, atol=1e-9)
    one_root, one_total = path_sums(trees[:1], tables[:1], X[:3])
    np.testing.assert_allclose(one_root + one_total.sum(axis=1), trees[0].predict(X[:3]).ravel(), atol=1e-9)
    # a feature no tree splits on contributes nothing
    unused = np.setdiff1d(np.arange(X.shape[1]), np.concatenate([tree.feature[tree.feature >= 0] for tree in trees]))
    assert np.all(totals[:, unused] == 0)
