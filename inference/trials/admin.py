"""Trials in the admin: their own read-only pages (running ones first, with the live comparison), and a panel on
each version's page of the registry mirror that shows the trials the version took part in (its model's decision
history) and, for a running one, its live figures."""

from typing import Any

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse

from registry_mirror.models import ModelVersion, RegisteredModel
from registry_mirror.panels import Panel

from ..models import Trial


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    """Written only by the trial services (API, policy, beat); shown here."""

    list_display = [
        "created_at", "model_name", "challenger_version", "champion_version", "mode", "share", "policy", "status",
        "paired_rows", "verdict", "ended_at",
    ]  # fmt: skip
    list_filter = ["status", "mode", "policy", "model_name"]
    search_fields = ["=model_name"]
    readonly_fields = ["comparison"]
    exclude = ["figures"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="paired rows")
    def paired_rows(self, obj: Trial) -> int | None:
        return obj.figures.get("paired_rows")

    @admin.display(description="verdict")
    def verdict(self, obj: Trial) -> str:
        return obj.figures.get("verdict", "-")

    @admin.display(description="live comparison")
    def comparison(self, obj: Trial) -> str:
        return render_to_string("inference/trial_figures.html", trial_context(obj))


def trial_context(trial: Trial) -> dict[str, Any]:
    """The figures of a trial as rows of a table: one line per measure, champion and challenger side by side."""
    figures = trial.figures or {}

    def arms(key: str, field: str | None = None) -> tuple[Any, Any]:
        """The champion's and the challenger's value of ``figures[key]`` (or of its ``field``)."""
        values = [
            (figures.get(arm) or {}).get(field) if field else (figures.get(key) or {}).get(arm)
            for arm in ("champion", "challenger")
        ]
        if field and key != "metrics":
            values = [((figures.get(key) or {}).get(arm) or {}).get(field) for arm in ("champion", "challenger")]
        return values[0], values[1]

    rows = [
        ("MAE", *arms("metrics", "mae")),
        ("RMSE", *arms("metrics", "rmse")),
        ("interval coverage", *arms("interval_coverage", "coverage")),
        ("error rate", *arms("error_rate")),
        ("p99 latency (ms)", *arms("p99_latency_ms")),
        ("answers", *arms("answers")),
        ("scorings", *arms("scorings")),
    ]
    return {
        "trial": trial,
        "rows": rows,
        "figures": figures,
        "difference": figures.get("absolute_error_difference"),
        "evidence": figures.get("evidence") or {},
        "url": reverse("admin:inference_trial_change", args=[trial.pk]),
    }


def version_trial_panels(version: ModelVersion) -> list[Panel]:
    """The trials ``version`` was champion or challenger in, newest first; nothing for a version never tried."""
    from django.db.models import Q

    trials = list(
        Trial.objects.filter(model_name=version.name)
        .filter(Q(champion_version=version.version) | Q(challenger_version=version.version))
        .select_related("decided_by")[:10]
    )
    if not trials:
        return []
    html = render_to_string(
        "inference/version_trials.html", {"trials": [trial_context(trial) for trial in trials], "version": version}
    )
    return [Panel("Live trials", html)]


def model_trial_panels(model: RegisteredModel) -> list[Panel]:
    """A model's running trial with its live comparison, then the trials it ended and how (its decision history),
    newest first."""
    trials = list(Trial.objects.filter(model_name=model.name).select_related("decided_by")[:10])
    if not trials:
        return []
    running = [trial for trial in trials if trial.status == Trial.Status.RUNNING]
    ended = [trial for trial in trials if trial.status != Trial.Status.RUNNING]
    panels = []
    if running:
        html = render_to_string("inference/version_trials.html", {"trials": [trial_context(running[0])]})
        panels.append(Panel("Running trial", html))
    if ended:
        html = render_to_string("inference/model_decisions.html", {"trials": [trial_context(t) for t in ended]})
        panels.append(Panel("Trial decisions", html))
    return panels
