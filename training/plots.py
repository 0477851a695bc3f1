"""Diagnostic figures of a training result: predicted vs actual on the holdout, feature importances, residuals
over time, and the backtest's error by fold."""

from typing import Any

import numpy as np

from core.contract import PLOTS

from .ml.backtest import candidate_label


def training_figures(
    *,
    y_test: np.ndarray,
    y_pred: np.ndarray,
    feature_names: list[str],
    importances: np.ndarray,
    timestamps: np.ndarray | None = None,
    band: np.ndarray | None = None,
    backtests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Matplotlib figures keyed by plot name (``core.contract.PLOTS``); the Agg backend keeps workers headless.

    ``band`` is the half width of the 90 % prediction interval on each holdout row, drawn around the residuals.
    ``backtests`` are the backtest results (``BacktestResult.as_dict()``), the served estimator's first.
    """
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
        figures["residuals_over_time"] = residuals_figure(
            timestamps=timestamps, y_test=y_test, y_pred=y_pred, band=band
        )
    if backtests:
        figures["backtest_error_by_fold"] = backtest_figure(backtests)
    return figures


def backtest_figure(backtests: list[dict[str, Any]]) -> Any:
    """MAE and RMSE of each backtest fold, oldest first, for the served estimator (solid) and any other candidate
    (dashed, RMSE only): a fold far above the others is a stretch of time the model gets wrong; a rising line, a
    series that drifts away from its past."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.5), dpi=100)
    ax = figure.subplots()
    served = backtests[0]
    folds = [fold["fold"] for fold in served["folds"]]
    for metric, color in (("mae", "tab:blue"), ("rmse", "tab:orange")):
        values = [fold[metric] for fold in served["folds"]]
        mean, sd = served[f"{metric}_mean"], served[f"{metric}_sd"]
        label = f"{candidate_label(served)} {metric.upper()} (mean {mean:.4g} ± {sd:.4g})"
        ax.plot(folds, values, marker="o", color=color, label=label)
    for other in backtests[1:]:
        ax.plot(
            [fold["fold"] for fold in other["folds"]],
            [fold["rmse"] for fold in other["folds"]],
            marker=".",
            linestyle="--",
            label=f"{candidate_label(other)} RMSE (mean {other['rmse_mean']:.4g})",
        )
    ax.set_xticks(folds, [f"{fold['fold']}\n{fold['test_from'][:10]}" for fold in served["folds"]])
    ax.set(xlabel="fold (first scored day)", ylabel="error", title=PLOTS["backtest_error_by_fold"])
    ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure


def residuals_figure(
    *, timestamps: np.ndarray, y_test: np.ndarray, y_pred: np.ndarray, band: np.ndarray | None = None
) -> Any:
    """Actual minus predicted along the holdout's timestamps: a trend or a seasonal wave shows what the model
    misses as time moves away from its training window. A residual inside the band is an actual its interval
    covered."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.5), dpi=100)
    ax = figure.subplots()
    ax.plot(timestamps, y_test - y_pred, marker=".", markersize=3, linewidth=0.6)
    ax.axhline(0.0, color="grey", linewidth=1, linestyle="--")
    if band is not None:
        half = np.broadcast_to(np.asarray(band, dtype=np.float64), np.shape(y_test))
        ax.fill_between(timestamps, -half, half, color="tab:orange", alpha=0.2, label="90 % prediction interval")
        ax.legend(loc="upper left", fontsize="small")
    ax.set(xlabel="timestamp", ylabel="actual - predicted", title=PLOTS["residuals_over_time"])
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure
