"""Bounded forests: the size budget fills in what a request leaves open, the ceilings refuse what cannot fit, and
a bounded forest loses (almost) nothing against an unbounded one."""

import numpy as np
import pandas as pd
import pytest

from training import ml, sizing
from training.services import training_size_budget


def friedman(n_samples: int, seed: int = 0) -> ml.PreparedData:
    """A time-ordered table with 8 features: a nonlinear target (Friedman #1 on five of them) plus noise."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=n_samples, n_features=8, noise=1.0, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=n_samples, freq="min"))
    frame["target"] = y
    return ml.prepare_data(frame, target="target", timestamp="timestamp")


def test_open_size_parameters_come_from_the_budget():
    # given
    budget = sizing.SizeBudget(max_nodes=1_000_000, max_samples=50_000)

    # when
    small = sizing.bounded_params(ml.TrainingParams(n_estimators=100), budget=budget, n_samples=40_000)
    big = sizing.bounded_params(ml.TrainingParams(n_estimators=100), budget=budget, n_samples=800_000)

    # then: 100 trees of 5000 leaves are 999 900 nodes; subsampling only once the rows pass the budget's
    assert (small.max_leaf_nodes, small.max_samples) == (5000, None)
    assert (big.max_leaf_nodes, big.max_samples) == (5000, 50_000)
    assert sizing.size_estimate(big).nodes <= budget.max_nodes


def test_given_size_parameters_win_over_the_budget():
    # given
    asked = ml.TrainingParams(n_estimators=10, max_leaf_nodes=70, max_samples=999)

    # when
    used = sizing.bounded_params(asked, budget=sizing.SizeBudget(max_samples=10), n_samples=10**6)

    # then
    assert used == asked


@pytest.mark.parametrize(
    ("params", "budget", "limit"),
    [
        # 2000 trees of 1M leaves: ~160 GB of ONNX
        (ml.TrainingParams(n_estimators=2000, max_leaf_nodes=1_000_000), sizing.SizeBudget(), sizing.ONNX_LIMIT_BYTES),
        # within ONNX's limit, over a 1 GiB memory budget
        (ml.TrainingParams(n_estimators=100, max_leaf_nodes=20_000), sizing.SizeBudget(memory_bytes=2**30), 2**30),
    ],
)
def test_a_forest_past_a_ceiling_is_refused_with_the_reason(params, budget, limit):
    # when
    with pytest.raises(sizing.ModelTooLarge) as refused:
        sizing.size_check(params, budget=budget)

    # then
    assert refused.value.code == "model_too_large"
    assert refused.value.extra["limit_bytes"] == limit
    assert refused.value.extra["estimate"]["nodes"] == params.n_estimators * (2 * params.max_leaf_nodes - 1)


def test_the_estimate_is_an_upper_bound_of_the_grown_forest():
    # given
    data = friedman(3000)
    params = ml.TrainingParams(n_estimators=8, max_leaf_nodes=300)

    # when
    forest = ml.fit_random_forest(data.X, data.y, params)

    # then
    nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
    assert nodes <= sizing.size_estimate(params, n_samples=3000).nodes
    assert max(tree.get_n_leaves() for tree in forest.estimators_) <= 300


def test_growing_in_chunks_gives_the_same_forest_and_reports_each_chunk():
    # given
    data = friedman(500)
    params = ml.TrainingParams(n_estimators=25, max_leaf_nodes=50)
    reports: list[float] = []

    # when
    chunked = ml.fit_random_forest(data.X, data.y, params, reports.append)

    # then
    from sklearn.ensemble import RandomForestRegressor

    whole = RandomForestRegressor(n_estimators=25, max_leaf_nodes=50, random_state=params.random_state).fit(
        data.X, data.y
    )
    for grown, fitted in zip(chunked.estimators_, whole.estimators_, strict=True):
        np.testing.assert_array_equal(grown.predict(data.X), fitted.predict(data.X))
    assert len(chunked.estimators_) == 25 and not chunked.warm_start
    assert len(reports) == -(-25 // ml.tree_chunk(25)) and reports == sorted(reports) and reports[-1] == 1.0


def test_training_stops_where_progress_raises():
    # given
    class Stop(Exception):
        pass

    seen: list[float] = []

    def progress(done: float) -> None:
        seen.append(done)
        if done > 0.2:
            raise Stop

    # when
    with pytest.raises(Stop):
        ml.train(friedman(400), ml.TrainingParams(n_estimators=30, max_leaf_nodes=20), progress)

    # then: it stopped while growing the served forest, a chunk past 0.2
    assert 0.2 < seen[-1] < 0.45


@pytest.mark.django_db
def test_at_100k_rows_the_bounded_default_is_as_accurate_as_an_unbounded_forest():
    # given: the configured budget, and a forest of the same size with no bound at all
    data = friedman(100_000)
    split = ml.chronological_split(len(data.y), 0.2)
    X_train, y_train, X_test, y_test = data.X[:split], data.y[:split], data.X[split:], data.y[split:]
    bounded = sizing.bounded_params(ml.TrainingParams(), budget=training_size_budget(), n_samples=split)
    unbounded = ml.TrainingParams()

    # when
    bounded_forest = ml.fit_random_forest(X_train, y_train, bounded)
    bounded_r2 = ml.regression_metrics(y_test, bounded_forest.predict(X_test))["r2"]
    bounded_nodes = sum(tree.tree_.node_count for tree in bounded_forest.estimators_)
    del bounded_forest
    unbounded_forest = ml.fit_random_forest(X_train, y_train, unbounded)
    unbounded_r2 = ml.regression_metrics(y_test, unbounded_forest.predict(X_test))["r2"]
    unbounded_nodes = sum(tree.tree_.node_count for tree in unbounded_forest.estimators_)

    # then: a fifth of the nodes or fewer, within 0.01 of R²
    assert bounded.max_leaf_nodes is not None
    assert bounded_nodes <= training_size_budget().max_nodes < unbounded_nodes / 4
    assert bounded_r2 >= unbounded_r2 - 0.01, (bounded_r2, unbounded_r2)
