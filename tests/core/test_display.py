"""Numbers, metric names and times as the admin pages show them."""

from datetime import UTC, datetime

import pytest

from core.display import metric_label, metric_rows, number, param_rows, when


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.6215178476734462, "0.6215"),
        (77.46666666666677, "77.47"),
        (109.64189755745757, "109.6"),
        (12345.678, "12346"),
        (-0.25, "-0.25"),
        (1.0783283156491309e-07, "1.08e-07"),
        (0.0, "0"),
        (24.0, "24"),
        (96, "96"),
        (None, "-"),
        ("None", "None"),
        (True, "True"),
    ],
)
def test_a_number_shows_about_four_significant_digits(value, shown):
    assert number(value) == shown


def test_metrics_have_the_names_a_data_scientist_uses_headline_ones_first():
    # given
    metrics = {"n_test": 24.0, "interval_coverage_95": 1.0, "rmse": 109.64, "custom": 0.5, "r2": 0.62, "mae": 77.46}

    # when
    rows = metric_rows(metrics)

    # then
    assert rows == [
        ("R²", "0.62"),
        ("MAE", "77.46"),
        ("RMSE", "109.6"),
        ("holdout rows", "24"),
        ("custom", "0.5"),
        ("95 % interval coverage", "1"),
    ]
    assert metric_label("interval_mean_width_80") == "80 % interval mean width"


def test_parameters_show_a_nested_group_by_dotted_name_and_none_as_mlflow_logs_it():
    assert param_rows({"max_depth": None, "test_size": 0.2, "estimate": {"nodes": 2390}}) == [
        ("max_depth", "None"),
        ("test_size", "0.2"),
        ("estimate.nodes", "2390"),
    ]


def test_times_show_to_the_second(settings):
    settings.TIME_ZONE = "UTC"
    assert when(datetime(2026, 12, 6, 16, 35, 21, 417000, tzinfo=UTC)) == "2026-12-06 16:35:21 UTC"
    assert when(None) == "-"
