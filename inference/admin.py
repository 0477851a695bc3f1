"""Serving's pages in the admin: the prediction log, the monitoring reports, and a panel on each version's page
of the registry mirror (live performance and drift next to the holdout's, and against the current @champion)."""

from datetime import timedelta

import numpy as np
from django.contrib import admin
from django.template.loader import render_to_string
from django.utils import timezone

from core.display import number
from core.errors import ApplicationError
from core.intervals import LEVELS, level_key
from registry_mirror import selectors
from registry_mirror.models import ModelVersion
from registry_mirror.panels import Panel

from .feedback import live_metrics
from .models import MonitoringReport, PredictionLog
from .monitoring import drift_get, monitoring_reports_of

CHAMPION = "champion"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by serving and beat only."""

    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = [
        "predicted_at", "model_name", "model_version", "engine", "n_rows", "interval_level", "caller", "has_actuals"
    ]  # fmt: skip
    list_select_related = ["caller"]
    list_filter = ["model_name", "engine", "predicted_at"]
    search_fields = ["=request_id", "=client_request_id", "=model_name", "=caller__username"]
    exclude = ["inputs", "predictions", "interval_lower", "interval_upper", "actuals"]
    readonly_fields = ["first_rows"]

    @admin.display(boolean=True, description="actuals")
    def has_actuals(self, obj: PredictionLog) -> bool:
        return obj.feedback_at is not None

    @admin.display(description="first rows (inputs → prediction, actual)")
    def first_rows(self, obj: PredictionLog) -> str:
        n = min(obj.n_rows, 10)
        inputs = np.frombuffer(obj.inputs, dtype="<f4").reshape(obj.n_rows, len(obj.feature_names))[:n]
        predictions = np.frombuffer(obj.predictions, dtype="<f8")[:n]
        actuals = np.frombuffer(obj.actuals, dtype="<f8")[:n] if obj.actuals is not None else [None] * n
        return "\n".join(
            f"{row.tolist()} → {prediction:.6g}, {actual if actual is None else f'{actual:.6g}'}"
            for row, prediction, actual in zip(inputs, predictions, actuals, strict=True)
        )


@admin.register(MonitoringReport)
class MonitoringReportAdmin(ReadOnlyAdmin):
    list_display = ["until", "model_name", "model_version", "n_rows", "n_feedback", "live_mae", "drifted"]
    list_filter = ["model_name", "drifted", "until"]
    search_fields = ["=model_name"]

    @admin.display(description="live MAE")
    def live_mae(self, obj: MonitoringReport) -> str:
        return number(obj.performance.get("mae"))


def version_monitoring_context(version: ModelVersion) -> dict:
    """What a version's panel shows: holdout and live metrics of it and of the current @champion, the last
    day's drift and the daily reports."""
    logged = PredictionLog.objects.filter(model_name=version.name, model_version=version.version)
    week_ago = timezone.now() - timedelta(days=7)
    columns = [
        {"label": "holdout", **_holdout(version)},
        {"label": "live, all", **live_metrics(logged)},
        {"label": "live, 7 days", **live_metrics(logged.filter(predicted_at__gte=week_ago))},
    ]
    # What MDS serves as the champion, not where MLflow's alias points.
    champion_number = selectors.served_aliases_of(name=version.name).get(CHAMPION)
    champion = None
    if champion_number is not None and int(champion_number) != version.version:
        champion = ModelVersion.objects.filter(name=version.name, version=int(champion_number)).first()
    if champion is not None:
        champion_logged = PredictionLog.objects.filter(model_name=champion.name, model_version=champion.version)
        columns += [
            {"label": f"@{CHAMPION} v{champion.version} holdout", **_holdout(champion)},
            {"label": f"@{CHAMPION} v{champion.version} live, all", **live_metrics(champion_logged)},
        ]
    drift, drift_error = None, ""
    try:
        drift = drift_get(model_name=version.name, version=version.version)
    except ApplicationError as exc:
        drift_error = exc.message
    else:
        for feature in drift["features"].values():
            # No logged value of the feature in the window: its PSI (0) would read as "no drift".
            feature["no_data"] = not any(feature["live_shares"])
    return {
        "version": version,
        "columns": columns,
        "is_champion": champion_number is not None and int(champion_number) == version.version,
        "champion_number": champion_number,
        "drift": drift,
        "drift_error": drift_error,
        "reports": monitoring_reports_of(model_name=version.name, version=version.version),
    }


def _holdout(version: ModelVersion) -> dict:
    metrics = version.metrics or {}
    n = int(metrics["n_test"]) if "n_test" in metrics else None
    # As the live columns have it: the coverage of each level's intervals, measured at training (training.conformal).
    coverage = [
        {"level": level, "n": n, "coverage": metrics[f"interval_coverage_{level_key(level)}"]}
        for level in LEVELS
        if f"interval_coverage_{level_key(level)}" in metrics
    ]
    return {"n": n, "mae": version.mae, "rmse": version.rmse, "r2": version.r2, "interval_coverage": coverage}


def version_monitoring_panels(version: ModelVersion) -> list[Panel]:
    html = render_to_string("inference/version_monitoring.html", version_monitoring_context(version))
    return [Panel("Live performance and drift", html)]


# Live trials: their pages, and their panel on a version's page (registered from AppConfig.ready).
from .trials.admin import TrialAdmin  # noqa: E402, F401
