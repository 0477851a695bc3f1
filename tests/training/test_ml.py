import numpy as np
import pandas as pd
import pytest

from core.tabular import TableError
from tests.factories import weather_frame
from training import ml


def prepare(frame: pd.DataFrame) -> ml.PreparedData:
    return ml.prepare_data(frame, target="target", timestamp="timestamp")


def test_prepare_orders_rows_by_time_and_keeps_feature_order():
    # given: the newest rows come first in the file
    frame = weather_frame(30).iloc[::-1].reset_index(drop=True)

    # when
    data = prepare(frame)

    # then
    assert data.timestamps.is_monotonic_increasing
    assert data.feature_names == [c for c in frame.columns if c not in ("timestamp", "target")]
    assert data.X.dtype == np.float32 and data.X.shape == (30, len(data.feature_names))
    assert data.y[0] == frame["target"].iloc[-1]


def test_prepare_drops_and_counts_rows_without_target():
    # given
    frame = weather_frame(30)
    frame.loc[[3, 7], "target"] = None

    # when
    data = prepare(frame)

    # then
    assert data.dropped_missing_target == 2
    assert len(data.y) == 28


@pytest.mark.parametrize(
    ("mutate", "code", "extra"),
    [
        (lambda f: f.drop(columns=["target"]), "missing_columns", {"missing_columns": ["target"]}),
        (
            lambda f: f.drop(columns=["timestamp", "target"]),
            "missing_columns",
            {"missing_columns": ["timestamp", "target"]},
        ),
        (lambda f: f[["timestamp", "target"]], "no_features", {}),
        (lambda f: f.assign(city="Paris"), "non_numeric_column", {"column": "city"}),
        (
            lambda f: f.assign(humidity_pct=f.humidity_pct.astype(object).where(f.index != 4, "n/a")),
            "bad_cell",
            {"column": "humidity_pct", "row": 5},
        ),
        (
            lambda f: f.assign(wind_speed_ms=f.wind_speed_ms.where(f.index != 9)),
            "bad_cell",
            {"column": "wind_speed_ms", "row": 10},
        ),
        (
            lambda f: f.assign(timestamp=f.timestamp.where(f.index != 2, "yesterday")),
            "bad_timestamp",
            {"column": "timestamp", "row": 3},
        ),
        (
            lambda f: f.assign(target=f.target.astype(object).where(f.index != 6, "high")),
            "bad_cell",
            {"column": "target", "row": 7},
        ),
        (lambda f: f.head(5), "too_few_rows", {"rows": 5}),
    ],
    ids=[
        "no-target",
        "no-target-no-timestamp",
        "no-feature",
        "text-column",
        "text-cell",
        "empty-cell",
        "bad-time",
        "text-target",
        "too-few-rows",
    ],
)
def test_prepare_names_what_is_wrong(mutate, code, extra):
    # given
    frame = mutate(weather_frame(30))

    # when
    with pytest.raises(TableError) as caught:
        prepare(frame)

    # then
    assert caught.value.code == code
    assert extra.items() <= caught.value.extra.items()


def test_bad_cell_row_counts_rows_of_the_file_even_after_rows_without_target():
    # given: row 2 has no target (dropped), row 6 has a bad feature
    frame = weather_frame(30)
    frame.loc[1, "target"] = None
    frame["pressure_hpa"] = frame["pressure_hpa"].astype(object)
    frame.loc[5, "pressure_hpa"] = "?"

    # when
    with pytest.raises(TableError) as caught:
        prepare(frame)

    # then
    assert caught.value.extra["row"] == 6
    assert "row 6" in caught.value.message


def test_holdout_is_the_most_recent_share():
    # given / when
    split = ml.chronological_split(100, 0.2)

    # then
    assert split == 80
    with pytest.raises(TableError):
        ml.chronological_split(3, 0.9)


def test_train_is_reproducible_and_onnx_agrees_with_sklearn():
    # given
    data = prepare(weather_frame(200))
    params = ml.TrainingParams(n_estimators=20, random_state=3)

    # when
    first, second = ml.train(data, params), ml.train(data, params)

    # then: same inputs, same model (up to the summation order of parallel prediction)
    np.testing.assert_allclose(first.y_pred_test, second.y_pred_test, rtol=1e-12)
    assert first.counts == {
        "n_train": 160,
        "n_calibration": 32,
        "n_test": 40,
        "n_features": 8,
        "dropped_missing_target": 0,
        "backtest_folds": 3,
    }
    # the forest learned the structure of the demand curve
    assert first.metrics["r2"] > 0.5
    assert first.metrics["rmse"] >= first.metrics["mae"] > 0
    # the ONNX conversion is faithful, and the recorded parity is what we measure again here
    onnx_pred = ml.onnx_predict(first.onnx_model, first.X_test)
    rel = np.abs(onnx_pred - first.y_pred_test) / np.abs(first.y_pred_test)
    assert rel.max() <= 1e-4
    assert first.metrics["onnx_max_rel_diff"] == pytest.approx(rel.max(), rel=1e-3, abs=1e-12)


def test_different_random_state_gives_a_different_forest():
    # given
    data = prepare(weather_frame(120))

    # when
    a = ml.train(data, ml.TrainingParams(n_estimators=5, random_state=1))
    b = ml.train(data, ml.TrainingParams(n_estimators=5, random_state=2))

    # then
    assert not np.array_equal(a.y_pred_test, b.y_pred_test)
