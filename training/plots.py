"""Diagnostic figures of a training result: predicted vs actual on the holdout, and feature importances."""

from typing import Any

import numpy as np

from core.contract import PLOTS


def training_figures(
    *,
    y_test: np.ndarray,
    y_pred: np.ndarray,
    feature_names: list[str],
    importances: np.ndarray,
    timestamps: np.ndarray | None = None,
) -> dict[str, Any]:
    """Matplotlib figures keyed by plot name (``core.contract.PLOTS``); the Agg backend keeps workers headless."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    scatter = Figure(figsize=(5, 5), dpi=100)
    ax = scatter.subplots()
    ax.scatter(y_test, y_pred, s=12, alpha=0.7)
    low, high = float(min(y_test.min(), y_pred.min())), float(max(y_test.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
    ax.set(xlabel="actual", ylabel="predicted", title=PLOTS["predicted_vs_actual"])
    scatter.tight_layout()

    order = np.argsort(importances)
    bars = Figure(figsize=(6, max(2.5, 0.35 * len(feature_names) + 1)), dpi=100)
    ax = bars.subplots()
    ax.barh([feature_names[i] for i in order], importances[order])
    ax.set(xlabel="importance", title=PLOTS["feature_importances"])
    bars.tight_layout()
    figures = {"predicted_vs_actual": scatter, "feature_importances": bars}
    if timestamps is not None:
        figures["residuals_over_time"] = residuals_figure(timestamps=timestamps, y_test=y_test, y_pred=y_pred)
    return figures


def residuals_figure(*, timestamps: np.ndarray, y_test: np.ndarray, y_pred: np.ndarray) -> Any:
    """Actual minus predicted along the holdout's timestamps: a trend or a seasonal wave shows what the model
    misses as time moves away from its training window."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.5), dpi=100)
    ax = figure.subplots()
    ax.plot(timestamps, y_test - y_pred, marker=".", markersize=3, linewidth=0.6)
    ax.axhline(0.0, color="grey", linewidth=1, linestyle="--")
    ax.set(xlabel="timestamp", ylabel="actual - predicted", title=PLOTS["residuals_over_time"])
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure
