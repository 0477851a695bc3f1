"""training.conformal: calibration on the slice the twin forest never saw, and the choice of method."""

import numpy as np
import pandas as pd

from core.intervals import ABSOLUTE, SCALED
from tests.factories import weather_frame
from training import conformal, ml
from training.plots import residuals_figure


def noisy_frame(n: int, noise_for_high_x: float, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x, z = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    y = 100 * x + rng.normal(0, 1 + noise_for_high_x * (x > 0.7), n)
    timestamps = pd.date_range("2020-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M")
    return pd.DataFrame({"timestamp": timestamps, "x": x, "z": z, "target": y})


def train(frame: pd.DataFrame, **params) -> ml.TrainingResult:
    data = ml.prepare_data(frame, target="target", timestamp="timestamp")
    return ml.train(data, ml.TrainingParams(n_estimators=10, **params))


def test_scaled_intervals_are_kept_where_the_noise_varies_and_not_where_it_does_not():
    # given / when
    varying = train(noisy_frame(1000, noise_for_high_x=40))
    steady = train(weather_frame(3 * 365))

    # then
    assert varying.intervals.calibration.method == SCALED
    measured = varying.intervals.candidates
    assert measured[SCALED]["90"]["mean_width"] < measured[ABSOLUTE]["90"]["mean_width"] / 2
    assert steady.intervals.calibration.method == ABSOLUTE
    assert (
        steady.intervals.candidates[SCALED]["90"]["mean_width"]
        > steady.intervals.candidates[ABSOLUTE]["90"]["mean_width"]
    )
    # the metrics are the chosen method's holdout measurements
    assert varying.metrics["interval_mean_width_90"] == measured[SCALED]["90"]["mean_width"]
    assert varying.metrics["interval_coverage_95"] == measured[SCALED]["95"]["coverage"]


def test_the_served_forest_keeps_the_whole_training_window():
    # given
    frame = weather_frame(200)

    # when
    result = train(frame, calibration_size=0.25)

    # then: the forest saw the calibration slice too; only its twin did not
    assert result.counts["n_train"] == 160 and result.counts["n_calibration"] == 40
    assert result.estimator.n_features_in_ == 8
    assert result.intervals.calibration.n == 40
    assert result.metrics["r2"] > 0.5


def test_a_target_without_spread_gets_absolute_intervals_only():
    # given: every row has the same target, so every tree predicts it everywhere
    frame = weather_frame(60).assign(target=5.0)

    # when
    result = train(frame)

    # then
    assert result.intervals.calibration.method == ABSOLUTE
    assert set(result.intervals.candidates) == {ABSOLUTE}
    assert result.metrics["interval_mean_width_90"] == 0.0 and result.metrics["interval_coverage_90"] == 1.0


def test_the_holdout_band_is_each_rows_interval_half_width():
    # given
    varying = train(noisy_frame(1000, noise_for_high_x=40))
    steady = train(weather_frame(3 * 365))

    # when
    scaled = conformal.holdout_half_widths(varying.intervals.calibration, varying.estimator, varying.X_test, 0.9)
    absolute = conformal.holdout_half_widths(steady.intervals.calibration, steady.estimator, steady.X_test, 0.9)
    beyond = conformal.holdout_half_widths(steady.intervals.calibration, steady.estimator, steady.X_test, 0.9999)

    # then: the band covers as the recorded holdout coverage says, and is one width for `absolute`
    covered = np.abs(varying.y_test - varying.y_pred_test) <= scaled
    assert covered.mean() == varying.metrics["interval_coverage_90"]
    assert scaled.shape == (len(varying.X_test),) and scaled.std() > 0
    assert np.all(absolute == steady.intervals.calibration.quantile(0.9))
    assert beyond is None


def test_the_residuals_plot_draws_the_band():
    # given
    result = train(weather_frame(3 * 365))
    n = len(result.y_test)
    band = conformal.holdout_half_widths(result.intervals.calibration, result.estimator, result.X_test, 0.9)

    # when
    figure = residuals_figure(
        timestamps=pd.date_range("2024-01-01", periods=n).to_numpy(),
        y_test=result.y_test,
        y_pred=result.y_pred_test,
        band=band,
    )

    # then
    (ax,) = figure.axes
    assert ax.get_legend().get_texts()[0].get_text() == "90 % prediction interval"
    assert len(ax.collections) == 1
