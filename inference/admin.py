"""Serving's pages in the admin: the prediction log, the monitoring reports, the batch jobs, and a panel on each
version's page of the registry mirror (live performance and drift next to the holdout's, and against the current
@champion)."""

from datetime import timedelta

import numpy as np
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.display import number, param_rows, table, when
from core.errors import ApplicationError
from core.intervals import LEVELS, level_key
from registry_mirror import selectors
from registry_mirror.models import ModelVersion
from registry_mirror.panels import Panel

from .batch.apis import object_response
from .batch.selectors import batch_jobs_visible
from .feedback import live_metrics
from .models import BatchJob, MonitoringReport, PredictionLog
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


@admin.register(BatchJob)
class BatchJobAdmin(ReadOnlyAdmin):
    """Batch jobs, written by their tasks only: a list to follow them and a page per job whose result and errors
    files download through the admin session."""

    list_display = [
        "id", "job_status", "model_name", "model_version", "rows", "progress_bar", "created", "created_by"
    ]  # fmt: skip
    list_filter = ["status", "model_name", "created_at"]
    search_fields = ["=model_name", "=key", "=created_by__username"]
    list_select_related = ["created_by"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "job_status",
                    "model_name",
                    "model_version",
                    "progress_bar",
                    "rows",
                    "chunks",
                    "error",
                    "downloads",
                    "drift_summary",
                    "created_by",
                ]  # fmt: skip
            },
        ),
        (
            "Options",
            {
                "fields": [
                    "model_format",
                    "input_format",
                    "output_format",
                    "passthrough",
                    "on_error",
                    "interval",
                    "explain",
                ]
            },
        ),  # fmt: skip
        ("Times", {"fields": ["created", "started", "finished"]}),
        (
            "Internals",
            {"classes": ["collapse"], "fields": ["key", "input_name", "input_bytes", "result_name", "errors_name"]},
        ),
    ]

    def get_queryset(self, request):
        return batch_jobs_visible(request.user).select_related("created_by")

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.fieldsets)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="status", ordering="status")
    def job_status(self, obj: BatchJob) -> str:
        return obj.get_status_display()

    @admin.display(description="rows done / total")
    def rows(self, obj: BatchJob) -> str:
        total = "?" if obj.rows_total is None else f"{obj.rows_total:,}"
        skipped = f" ({obj.rows_skipped:,} skipped)" if obj.rows_skipped else ""
        return f"{obj.rows_done:,} / {total}{skipped}"

    @admin.display(description="chunks done / total")
    def chunks(self, obj: BatchJob) -> str:
        return f"{obj.chunks_done} / {obj.chunks_total}"

    @admin.display(description="progress")
    def progress_bar(self, obj: BatchJob) -> str:
        return format_html(
            '<progress value="{}" max="1" class="job-progress">{}</progress> <span class="job-percent">{}</span>',
            f"{obj.progress:.3f}",
            f"{obj.progress:.0%}",
            f"{obj.progress:.0%}",
        )

    @admin.display(description="error")
    def error(self, obj: BatchJob) -> str:
        if not obj.error_code:
            return "-"
        return format_html(
            "<code>{}</code>: {}{}", obj.error_code, obj.error_message, table(param_rows(obj.error_extra))
        )

    @admin.display(description="files")
    def downloads(self, obj: BatchJob) -> str:
        links = []
        if obj.status == BatchJob.Status.SUCCEEDED and obj.result_name:
            links.append((_admin_url(obj, "result"), f"result ({obj.output_format})"))
        if obj.errors_name:
            links.append((_admin_url(obj, "errors"), f"rejected rows ({obj.rows_skipped:,}, CSV)"))
        return format_html_join(" · ", '<a href="{}">{}</a>', links) or "-"

    @admin.display(description="drift of the input (first rows)")
    def drift_summary(self, obj: BatchJob) -> str:
        drift = obj.drift
        if not drift:
            return "-"
        verdict = {True: "drifted", False: "no drift", None: "too few rows to tell"}[drift.get("drifted")]
        rows = [
            (name, f"{number(feature['psi'])}{' (drifted)' if feature.get('drifted') else ''}")
            for name, feature in drift.get("features", {}).items()
        ]
        return format_html("{} on {} rows (PSI threshold {}){}", verdict, drift.get("n_rows"),
                           number(drift.get("threshold")), table(rows))  # fmt: skip

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: BatchJob) -> str:
        return when(obj.created_at)

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: BatchJob) -> str:
        return when(obj.started_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: BatchJob) -> str:
        return when(obj.finished_at)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<int:object_id>/result/", self.admin_site.admin_view(self.result_view), name=f"{prefix}_result"),
            path("<int:object_id>/errors/", self.admin_site.admin_view(self.errors_view), name=f"{prefix}_errors"),
            *super().get_urls(),
        ]

    def result_view(self, request, object_id: int):
        job = self._visible(request, object_id)
        if job.status != BatchJob.Status.SUCCEEDED or not job.result_name:
            raise Http404(f"Batch job {object_id} has no result yet ({job.status}).")
        media = "text/csv" if job.output_format == BatchJob.Format.CSV else "application/vnd.apache.parquet"
        return self._download(request, job, job.result_name, media, f"batch-{job.pk}.{job.output_format}")

    def errors_view(self, request, object_id: int):
        job = self._visible(request, object_id)
        if not job.errors_name:
            raise Http404(f"Batch job {object_id} has no rejected rows.")
        return self._download(request, job, job.errors_name, "text/csv", f"batch-{job.pk}-errors.csv")

    def _visible(self, request, object_id: int) -> BatchJob:
        job = self.get_queryset(request).filter(pk=object_id).first()
        if job is None or not self.has_view_permission(request, job):
            raise Http404(f"No batch job {object_id}.")
        return job

    def _download(self, request, job: BatchJob, name: str, media: str, file_name: str):
        try:
            return object_response(name, media, file_name)
        except ApplicationError as exc:
            # Storage unreachable: say so on the job's page rather than an error page.
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:inference_batchjob_change", args=[job.pk]))


def _admin_url(job: BatchJob, kind: str) -> str:
    return reverse(f"admin:inference_batchjob_{kind}", args=[job.pk])


# Live trials: their pages, and their panel on a version's page (registered from AppConfig.ready).
from .trials.admin import TrialAdmin  # noqa: E402, F401
