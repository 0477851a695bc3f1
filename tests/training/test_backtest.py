import numpy as np
import pandas as pd
import pytest

from core.calendar import CALENDAR_FEATURES, calendar_matrix
from core.tabular import TableError
from tests.factories import weather_frame
from training import conformal, ml
from training.ml import backtest


def prepare(frame: pd.DataFrame, **options) -> ml.PreparedData:
    return ml.prepare_data(frame, target="target", timestamp="timestamp", **options)


def test_folds_expand_and_score_the_next_slice_after_the_gap():
    # given / when
    planned = backtest.folds(100, 3, gap=4)

    # then: 3 equal slices at the end of the window, oldest first, each fit on every row up to `gap` before it
    assert [(fold.train_start, fold.train_end, fold.test_start, fold.test_end) for fold in planned] == [
        (0, 24, 28, 52),
        (0, 48, 52, 76),
        (0, 72, 76, 100),
    ]


def test_folds_of_a_large_window_fit_on_its_newest_rows_only():
    # given / when
    planned = backtest.folds(1_000_000, 3, max_train_rows=200_000)

    # then
    assert all(fold.train_end - fold.train_start == 200_000 for fold in planned)
    assert planned[-1].test_end == 1_000_000


def test_default_is_three_folds_and_none_below_two():
    # given / when / then: the smallest trainable file (10 rows: 8 in the window) still gets 3
    assert backtest.folds_for(ml.TrainingParams(), 8) == 3
    assert backtest.folds_for(ml.TrainingParams(), 1_000_000) == 3
    assert backtest.folds_for(ml.TrainingParams(), 5) == 0
    assert backtest.folds_for(ml.TrainingParams(backtest=0), 100) == 0


def test_too_many_folds_for_the_rows_is_refused_naming_the_most():
    # when
    with pytest.raises(TableError) as caught:
        backtest.folds_for(ml.TrainingParams(backtest=20, gap=5), 40)

    # then
    assert caught.value.code == "backtest_too_many_folds"
    assert caught.value.extra["max_backtest"] == 16
    assert "at most 16 folds" in caught.value.message


def test_train_records_each_fold_and_their_mean_and_sd():
    # given
    data = prepare(weather_frame(200))
    params = ml.TrainingParams(n_estimators=8, backtest=4, gap=2)

    # when
    result = ml.train(data, params)

    # then
    assert result.backtest is not None
    folds = result.backtest.folds
    assert [fold["fold"] for fold in folds] == [1, 2, 3, 4]
    assert all(fold["train_rows"] < 160 and fold["test_rows"] == (160 - 2) // 5 for fold in folds)
    maes = [fold["mae"] for fold in folds]
    assert result.metrics["backtest_mae_mean"] == pytest.approx(np.mean(maes))
    assert result.metrics["backtest_mae_sd"] == pytest.approx(np.std(maes, ddof=1))
    assert {"backtest_rmse_mean", "backtest_r2_sd"} <= set(result.metrics)
    record = result.backtest_record(params)
    assert record["estimator"] == "random_forest" and record["gap"] == 2 and record["leaderboard"] == []


@pytest.mark.parametrize("name", ["extra_trees", "hist_gradient_boosting"])
def test_each_estimator_converts_to_onnx_with_recorded_parity(name):
    # given
    data = prepare(weather_frame(150))

    # when
    result = ml.train(data, ml.TrainingParams(n_estimators=10, estimator=name))

    # then
    assert result.estimator_name == name
    assert result.metrics["onnx_max_rel_diff"] < 1e-4
    onnx_pred = ml.onnx_predict(result.onnx_model, result.X_test)
    np.testing.assert_allclose(onnx_pred, result.y_pred_test, rtol=1e-4)
    assert result.importances is not None and len(result.importances) == len(data.feature_names)


def test_boosting_is_calibrated_with_absolute_intervals():
    # given
    data = prepare(weather_frame(150))

    # when
    result = ml.train(data, ml.TrainingParams(n_estimators=10, estimator="hist_gradient_boosting"))

    # then: no tree spread to scale by
    assert result.intervals.calibration.method == "absolute"
    assert not conformal.has_tree_spread(result.estimator)
    assert "interval_coverage_90" in result.metrics


def test_auto_picks_the_lowest_backtest_rmse_and_keeps_the_leaderboard():
    # given
    data = prepare(weather_frame(200))
    params = ml.TrainingParams(n_estimators=8, estimator="auto")

    # when
    result = ml.train(data, params)

    # then
    board = result.backtest_record(params)["leaderboard"]
    assert sorted(entry["estimator"] for entry in board) == sorted(ml.ESTIMATORS)
    assert board == sorted(board, key=lambda entry: entry["rmse_mean"])
    assert result.estimator_name == board[0]["estimator"] == result.backtest.estimator


def seasonal_frame(days: int, *, seasonal: bool) -> pd.DataFrame:
    """Daily rows whose target is the day of year's cycle (``seasonal``) or a function of the file's own ``x``,
    the other being noise."""
    rng = np.random.default_rng(3)
    timestamps = pd.date_range("2022-01-01", periods=days, freq="D")
    x = rng.normal(size=days)
    cycle = 10 * np.sin(2 * np.pi * timestamps.day_of_year.to_numpy() / 365.25)
    target = cycle + 0.1 * x if seasonal else 5 * x
    return pd.DataFrame({"timestamp": timestamps.strftime("%Y-%m-%d"), "x": x, "target": target})


def test_auto_with_calendar_serves_the_calendar_where_the_backtest_finds_it_helps():
    # given: a yearly cycle only the timestamp shows
    data = prepare(seasonal_frame(730, seasonal=True), calendar=True)
    params = ml.TrainingParams(n_estimators=10, estimator="auto", calendar=True)

    # when
    result = ml.train(data, params)

    # then: four candidates, today's default without the calendar among them, and a calendar one served
    board = result.backtest_record(params)["leaderboard"]
    assert len(board) == 4
    assert any(entry["estimator"] == "random_forest" and not entry["calendar"] for entry in board)
    assert result.backtest.calendar and board[0]["calendar"]
    assert result.data.calendar_from == "timestamp" and result.feature_names == ["x", *CALENDAR_FEATURES]


def test_auto_with_calendar_drops_it_where_the_backtest_finds_it_does_not_help():
    # given: the target is the file's own feature; the calendar columns are noise to the trees
    data = prepare(seasonal_frame(730, seasonal=False), calendar=True)
    params = ml.TrainingParams(n_estimators=10, estimator="auto", calendar=True)

    # when
    result = ml.train(data, params)

    # then: the served candidate is the board's best, and its model takes the file's own columns only
    board = result.backtest_record(params)["leaderboard"]
    assert board[0]["estimator"] == result.estimator_name and board[0]["calendar"] is False
    assert result.data.calendar_from is None and result.feature_names == ["x"]
    assert result.estimator.n_features_in_ == 1 and result.X_test.shape[1] == 1


def test_auto_with_calendar_on_a_timestamp_alone_backtests_the_calendar_candidates_only():
    # given: no feature but the timestamp
    data = prepare(seasonal_frame(200, seasonal=True).drop(columns="x"), calendar=True)
    params = ml.TrainingParams(n_estimators=5, estimator="auto", calendar=True)

    # when
    result = ml.train(data, params)

    # then
    board = result.backtest_record(params)["leaderboard"]
    assert len(board) == 3 and all(entry["calendar"] for entry in board)
    assert result.feature_names == list(CALENDAR_FEATURES)


def test_auto_without_rows_for_a_backtest_serves_a_random_forest():
    # given
    data = prepare(weather_frame(30))

    # when
    result = ml.train(data, ml.TrainingParams(n_estimators=4, estimator="auto", backtest=0))

    # then
    assert result.estimator_name == "random_forest" and result.backtest is None


def test_calendar_features_follow_the_files_own_as_cyclic_pairs():
    # given
    frame = weather_frame(30)

    # when
    data = prepare(frame, calendar=True)

    # then
    assert data.feature_names[-8:] == list(CALENDAR_FEATURES)
    assert data.calendar_from == "timestamp"
    pairs = data.X[:, -8:].astype(np.float64).reshape(len(data.X), 4, 2)
    np.testing.assert_allclose((pairs**2).sum(axis=2), 1.0, atol=1e-6)


def test_calendar_values_of_known_times():
    # given: midnight on Monday 1 January, and 18:00 on a Thursday in July
    stamps = pd.to_datetime(pd.Series(["2024-01-01T00:00:00Z", "2024-07-04T18:00:00+02:00"]), utc=True)

    # when
    values = dict(zip(CALENDAR_FEATURES, calendar_matrix(stamps).T, strict=True))

    # then
    np.testing.assert_allclose(values["hour_sin"], [0.0, np.sin(2 * np.pi * 16 / 24)], atol=1e-6)
    np.testing.assert_allclose(values["weekday_cos"], [1.0, np.cos(2 * np.pi * 3 / 7)], atol=1e-6)
    np.testing.assert_allclose(values["month_cos"], [1.0, np.cos(2 * np.pi * 6 / 12)], atol=1e-6)
    np.testing.assert_allclose(values["yearday_sin"][0], 0.0, atol=1e-6)


def test_calendar_refuses_a_file_that_already_has_its_columns():
    # given
    frame = weather_frame(30).assign(hour_sin=0.0)

    # when
    with pytest.raises(TableError) as caught:
        prepare(frame, calendar=True)

    # then
    assert caught.value.code == "calendar_column_clash" and caught.value.extra["columns"] == ["hour_sin"]
