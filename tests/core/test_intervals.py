"""core.intervals: the split-conformal quantile, its limits, and the calibration file."""

import numpy as np
import pytest

from core.errors import ApplicationError
from core.intervals import ABSOLUTE, SCALED, Calibration, calibration_scores, coverage_and_width


def test_the_quantile_is_the_ceil_n_plus_1_level_th_smallest_score():
    # given: 19 scores 1..19
    calibration = Calibration(ABSOLUTE, np.arange(1.0, 20.0))

    # when / then: rank ceil(20 * level)
    assert calibration.quantile(0.9) == 18.0
    assert calibration.quantile(0.95) == 19.0
    assert calibration.quantile(0.5) == 10.0
    assert calibration.quantile(0.01) == 1.0
    assert calibration.max_level == 0.95


def test_a_level_beyond_n_over_n_plus_1_is_refused_not_guessed():
    # given
    calibration = Calibration(ABSOLUTE, np.arange(1.0, 20.0))

    # when
    with pytest.raises(ApplicationError) as caught:
        calibration.quantile(0.951)

    # then
    assert caught.value.code == "invalid_input"
    assert caught.value.extra == {"interval": 0.951, "max_level": 0.95, "calibration_rows": 19}


def test_on_exchangeable_data_coverage_is_at_least_the_level():
    # given: many calibration/test draws from one distribution, 99 calibration rows each
    rng = np.random.default_rng(0)
    coverages = []
    for _ in range(400):
        calibration = Calibration(ABSOLUTE, calibration_scores(rng.standard_t(3, 99)))
        test = rng.standard_t(3, 200)
        coverages.append(coverage_and_width(calibration, test, np.zeros(200), None, 0.9)["coverage"])

    # when
    mean = float(np.mean(coverages))

    # then: the guarantee is 0.9 <= coverage <= 0.9 + 1 / (n + 1) on average
    assert 0.9 - 0.005 <= mean <= 0.91 + 0.005


def test_scaled_half_widths_follow_the_spread():
    # given: residuals proportional to the spread
    spread = np.array([1.0, 2.0, 4.0, 8.0] * 5)
    calibration = Calibration(SCALED, calibration_scores(3 * spread, spread, 0.0), scale_floor=0.0)

    # when
    half = calibration.half_width(0.5, np.array([1.0, 10.0]))

    # then
    np.testing.assert_allclose(half, [3.0, 30.0])
    with pytest.raises(ValueError):
        calibration.half_width(0.5)


def test_the_calibration_file_round_trips_and_garbage_is_refused():
    # given
    calibration = Calibration(SCALED, np.array([0.5, 1.0, 2.0, 3.0]), scale_floor=0.25)

    # when
    again = Calibration.from_json(calibration.to_json(holdout={"note": 1}))

    # then
    assert again.method == SCALED and again.scale_floor == 0.25
    np.testing.assert_array_equal(again.scores, calibration.scores)
    for raw in (b'{"format": 2, "method": "absolute", "scores": [1]}', b'{"format": 1, "method": "x", "scores": [1]}'):
        with pytest.raises(ValueError):
            Calibration.from_json(raw)
    with pytest.raises(ValueError):
        Calibration.from_json(b'{"format": 1, "method": "absolute", "scores": []}')
    with pytest.raises(ValueError):
        Calibration.from_json(b'{"format": 1, "method": "absolute", "scores": [-1, 2]}')
