"""inference.forest: the trees' spread in one pass, and the path decomposition of a forest's and of boosting's
prediction."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

from inference.engines.sklearn import SklearnEngine
from inference.forest import (
    CategoricalSplits,
    boosted_path_sums,
    boosted_table,
    boosting_baseline,
    boosting_trees,
    forest_trees,
    mean_and_spread,
    path_sums,
    path_table,
    tree_moments,
)
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


@pytest.fixture(scope="module")
def boosting():
    """A small boosting model fit on rows with missing pressures (NaN), whose targets differ by them."""
    frame = weather_frame(300)
    X, y = frame.iloc[:, 1:-1].to_numpy(np.float64), frame["target"].to_numpy()
    X[::5, 1] = np.nan
    y = y + np.where(np.isnan(X[:, 1]), 40.0, 0.0)
    model = HistGradientBoostingRegressor(max_iter=15, max_leaf_nodes=8, learning_rate=0.5, random_state=0).fit(X, y)
    return model, X


def boosted_explanation(model, X):
    roots, totals = boosted_path_sums([boosted_table(tree) for tree in boosting_trees(model)], X)
    return boosting_baseline(model) + roots, totals


def test_boosted_contributions_add_up_to_the_boosting_prediction(boosting):
    # given: rows it saw and rows it never saw
    model, X = boosting
    unseen = weather_frame(50, seed=9).iloc[:, 1:-1].to_numpy(np.float64)

    # when
    (base, totals), (unseen_base, unseen_totals) = boosted_explanation(model, X), boosted_explanation(model, unseen)

    # then: the trees are summed, not averaged
    np.testing.assert_allclose(base + totals.sum(axis=1), model.predict(X), rtol=1e-6)
    np.testing.assert_allclose(unseen_base + unseen_totals.sum(axis=1), model.predict(unseen), rtol=1e-6)
    assert base == unseen_base
    # the base is the count-weighted mean of the leaves: about the training targets' mean
    assert abs(base - model.predict(X).mean()) < 0.05 * np.abs(model.predict(X)).mean()


def test_boosted_paths_send_missing_values_where_the_split_says(boosting):
    # given: the same rows with the pressure present, and missing
    model, X = boosting
    present = X[~np.isnan(X[:, 1])][:40]
    missing = present.copy()
    missing[:, 1] = np.nan
    assert any(
        tree.nodes["missing_go_to_left"][~tree.nodes["is_leaf"].astype(bool)].any() for tree in boosting_trees(model)
    )

    # when
    base, totals = boosted_explanation(model, missing)

    # then: the walk follows missing_go_to_left, so it explains the prediction for missing values too, and the
    # missing pressure is credited with the 40 it adds
    np.testing.assert_allclose(base + totals.sum(axis=1), model.predict(missing), rtol=1e-6)
    _, present_totals = boosted_explanation(model, present)
    assert (totals[:, 1] - present_totals[:, 1]).mean() > 20


def test_boosted_tables_refuse_categorical_splits():
    # given
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 200), rng.normal(size=200)])
    y = np.where(X[:, 0] == 2, 10.0, 0.0) + X[:, 1]
    model = HistGradientBoostingRegressor(max_iter=3, categorical_features=[0], random_state=0).fit(X, y)

    # when / then
    with pytest.raises(CategoricalSplits):
        [boosted_table(tree) for tree in boosting_trees(model)]


def test_only_single_output_boosting_with_an_identity_link_is_explained(forest):
    # given
    X = np.random.default_rng(0).uniform(1, 2, size=(50, 2))
    poisson = HistGradientBoostingRegressor(loss="poisson", max_iter=2).fit(X, X[:, 0])

    # then
    assert boosting_trees(poisson) is None
    assert boosting_trees(forest[0]) is None


@pytest.mark.parametrize("threads", [1, 3])
def test_the_engine_explains_boosting_on_shares_of_its_trees(boosting, threads):
    # given: more rows than one thread walks alone
    model, X = boosting
    rows = np.tile(X, (2, 1))
    engine = SklearnEngine(model, 0)

    # when
    base, totals = engine.contributions(rows, threads)

    # then
    np.testing.assert_allclose(base + totals.sum(axis=1), model.predict(rows), rtol=1e-6)
    assert engine.explainable and engine.trees is None
