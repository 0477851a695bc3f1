"""How the admin pages show numbers, metric names and times to a reader: rounded, named, to the second."""

from datetime import datetime
from typing import Any

from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join

# The run metrics and counts a training logs (training.ml, training.conformal), as a data scientist names them.
METRIC_LABELS = {
    "r2": "R²",
    "mae": "MAE",
    "rmse": "RMSE",
    "onnx_max_abs_diff": "ONNX vs scikit-learn, max. absolute difference",
    "onnx_max_rel_diff": "ONNX vs scikit-learn, max. relative difference",
    "n_train": "training rows",
    "n_calibration": "calibration rows",
    "n_test": "holdout rows",
    "n_features": "features",
    "dropped_missing_target": "rows dropped (no target)",
    "backtest_folds": "backtest folds",
    "backtest_mae_mean": "backtest MAE, mean",
    "backtest_mae_sd": "backtest MAE, sd",
    "backtest_rmse_mean": "backtest RMSE, mean",
    "backtest_rmse_sd": "backtest RMSE, sd",
    "backtest_r2_mean": "backtest R², mean",
    "backtest_r2_sd": "backtest R², sd",
}
INTERVAL_METRICS = {"interval_coverage_": "interval coverage", "interval_mean_width_": "interval mean width"}


def metric_label(key: str) -> str:
    """``"rmse"`` -> ``"RMSE"``, ``"interval_coverage_90"`` -> ``"90 % interval coverage"``; others as they are."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    for prefix, label in INTERVAL_METRICS.items():
        if key.startswith(prefix):
            return f"{key.removeprefix(prefix).replace('_', '.')} % {label}"
    return key


def number(value: Any) -> str:
    """A number to about four significant digits, a whole number as one; anything else as it is."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:.0f}"
    # Not 1e-3 or smaller as 0.000: tiny values (ONNX's differences) in exponent notation.
    return f"{value:.4g}" if magnitude >= 1e-3 else f"{value:.3g}"


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, rounded value) of each metric, the headline ones (R², MAE, RMSE) first, then by name."""
    order = list(METRIC_LABELS)
    keys = sorted(metrics, key=lambda key: (order.index(key) if key in order else len(order), key))
    return [(metric_label(key), number(metrics[key])) for key in keys]


def param_rows(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(name, value) of each parameter, a nested group's as ``group.name``."""
    rows = []
    for name, value in params.items():
        if isinstance(value, dict):
            rows += param_rows(value, prefix=f"{prefix}{name}.")
        else:
            # None as MLflow logs it: the parameter was left to its default.
            rows.append((f"{prefix}{name}", "None" if value is None else number(value)))
    return rows


def table(rows: list[tuple[str, str]]) -> str:
    """Name → value rows as a small HTML table, or "-" for none."""
    if not rows:
        return "-"
    body = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows)
    return format_html('<table class="name-value">{}</table>', body)


def when(value: datetime | None) -> str:
    """A time in the current time zone, to the second."""
    if value is None:
        return "-"
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i:s T")
