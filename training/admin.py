from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.contract import MODEL_NAME_PATTERN
from core.display import metric_rows, number, param_rows, table, when
from core.errors import ApplicationError, Forbidden
from registry_mirror.models import RegisteredModel
from registry_mirror.panels import Panel
from registry_mirror.services import model_training_check

from . import ml
from .models import Dataset, DatasetSeries, RetrainRequest, SeriesSegment, TrainingJob
from .selectors import training_job_links, visible_to
from .services import dataset_inspect, training_job_cancel, training_job_start
from .uploads import upload_stage


class DatasetUploadForm(forms.ModelForm):
    """Uploading a CSV in the admin starts a training job on it, with the API's defaults."""

    model_name = forms.RegexField(
        MODEL_NAME_PATTERN,
        max_length=200,
        required=False,
        help_text="Registered model name (default rf_regressor): letters, digits, '_', '.', '-'.",
    )
    target = forms.CharField(initial="target")
    timestamp = forms.CharField(initial="timestamp")

    # The user uploading, set by DatasetAdmin.get_form on the form class it makes for the request.
    user: AbstractBaseUser | AnonymousUser | None = None

    class Meta:
        model = Dataset
        fields = ["file"]

    def clean_model_name(self):
        name = self.cleaned_data["model_name"] or settings.MDS_DEFAULT_MODEL_NAME
        try:
            # As /train does it, before the file is read: someone else's model is refused with nothing stored.
            model_training_check(name=name, user=self.user)
        except ApplicationError as exc:
            raise ValidationError(exc.message) from exc
        return name

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        upload = cleaned.get("file")
        if upload and cleaned.get("model_name") and cleaned.get("target") and cleaned.get("timestamp"):
            try:
                # Measured and checked as /train does it: in chunks, the first rows here, the rest by the worker.
                self.staged = upload_stage(upload, max_bytes=settings.MDS_TRAIN_MAX_UPLOAD_BYTES)
                dataset_inspect(
                    source=self.staged.file,
                    target=cleaned["target"],
                    timestamp=cleaned["timestamp"],
                    test_size=0.2,
                )
            except ApplicationError as exc:
                raise ValidationError(exc.message) from exc
        return cleaned


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "original_name",
        "n_rows",
        "n_columns",
        "size_bytes",
        "short_sha256",
        "uploaded_by",
        "created_at",
    ]
    search_fields = ["original_name", "sha256"]
    list_filter = ["created_at"]
    readonly_fields = [
        "file",
        "original_name",
        "sha256",
        "size_bytes",
        "n_rows",
        "n_columns",
        "columns",
        "uploaded_by",
        "created_at",
        "job_links",
    ]
    show_full_result_count = False

    @admin.display(description="training jobs")
    def job_links(self, obj: Dataset) -> str:
        # A failed job's error names the bad column and row the worker found in this file.
        jobs = [
            (
                reverse("admin:training_trainingjob_change", args=[job.pk]),
                f"Job {job.pk} ({job.model_name})",
                job.get_status_display(),
                f": {job.error_code}: {job.error_message}" if job.error_code else "",
            )
            for job in obj.training_jobs.all()
        ]
        return format_html_join("", '<div><a href="{}">{}</a> {}{}</div>', jobs) or "-"

    @admin.display(description="sha256")
    def short_sha256(self, obj: Dataset) -> str:
        return obj.sha256[:12]

    def get_queryset(self, request):
        # As on the API: a trainer sees the datasets they uploaded, a maintainer all of them.
        return super().get_queryset(request).filter(visible_to(request.user, owner="uploaded_by"))

    def has_add_permission(self, request):
        # Uploading starts a training job.
        return super().has_add_permission(request) and request.user.has_perm("training.add_trainingjob")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = DatasetUploadForm
        form = super().get_form(request, obj, change, **kwargs)
        if issubclass(form, DatasetUploadForm):
            # A class made for this request: the attribute is this user's only.
            form.user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj else ["file", "model_name", "target", "timestamp"]

    def has_change_permission(self, request, obj=None):
        # Datasets are immutable once stored; the detail page is for reading.
        return request.method == "GET" and super().has_view_permission(request, obj)

    def save_model(self, request, obj, form, change):
        upload = form.cleaned_data["file"]
        try:
            job = training_job_start(
                file=form.staged,
                file_name=upload.name,
                user=request.user,
                model_name=form.cleaned_data["model_name"],
                target=form.cleaned_data["target"],
                timestamp=form.cleaned_data["timestamp"],
                params=ml.TrainingParams(),
            )
        except Forbidden as exc:
            # Another trainer claimed the new name since the form was checked.
            raise PermissionDenied(exc.message) from exc
        # The admin redirects to and logs against the object it saved: point it at the stored dataset.
        obj.pk = job.dataset.pk
        obj.refresh_from_db()
        # Told once the upload is committed and the job sent (add_view): its status now would be stale then.
        request.started_training_job_id = job.pk

    def add_view(self, request, form_url="", extra_context=None):
        response = super().add_view(request, form_url, extra_context)
        job_id = getattr(request, "started_training_job_id", None)
        if job_id is not None:
            # The upload's transaction has committed: in-process the job already ran, with workers it may not yet.
            job = TrainingJob.objects.get(pk=job_id)
            self.message_user(
                request,
                _job_started_message(job),
                _JOB_MESSAGE_LEVELS.get(TrainingJob.Status(job.status), messages.INFO),
            )
        return response


_JOB_MESSAGE_LEVELS = {
    TrainingJob.Status.SUCCEEDED: messages.SUCCESS,
    TrainingJob.Status.FAILED: messages.ERROR,
    TrainingJob.Status.CANCELLED: messages.WARNING,
}


def _job_started_message(job: TrainingJob) -> str:
    link = format_html(
        '<a href="{}">Job {}</a> ({})',
        reverse("admin:training_trainingjob_change", args=[job.pk]),
        job.pk,
        job.model_name,
    )
    if job.status == TrainingJob.Status.SUCCEEDED:
        return format_html("{} trained on this file: version {} is registered.", link, job.registered_version)
    if job.status == TrainingJob.Status.FAILED:
        return format_html("{} failed on this file: {}", link, job.error_message or job.error_code)
    if job.is_finished:
        return format_html("{} was {}.", link, job.get_status_display().lower())
    return format_html("{} is {} on this file — its page follows it.", link, job.get_status_display().lower())


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "model_name",
        "status",
        "stage",
        "progress_bar",
        "registered_version",
        "dataset",
        "attempts",
        "created",
        "finished",
    ]
    list_filter = ["status", "trigger", "model_name", "created_at"]
    search_fields = ["mlflow_run_id", "dataset__sha256", "model_name", "key"]
    list_select_related = ["dataset"]
    show_full_result_count = False
    change_form_template = "admin/training/trainingjob/change_form.html"
    # What a data scientist reads first; how the job was run (lease, broker, MLflow ids) folded away at the end.
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "model_name",
                    "job_status",
                    "job_stage",
                    "progress_bar",
                    "error",
                    "registered_version",
                    "links",
                    "dataset",
                    "target_column",
                    "timestamp_column",
                    "created_by",
                ]
            },
        ),
        ("Results", {"fields": ["metric_table", "backtest_table", "count_table"]}),
        ("Retraining", {"fields": ["trigger", "lineage_table"]}),
        ("Parameters", {"fields": ["param_table", "params_used_table"]}),
        ("Times", {"fields": ["created", "started", "finished", "duration"]}),
        (
            "Internals",
            {
                "classes": ["collapse"],
                "fields": [
                    "key",
                    "attempts",
                    "celery_task_id",
                    "dispatched",
                    "claim",
                    "claimed_by",
                    "heartbeat",
                    "mlflow_run_id",
                    "mlflow_model_id",
                    "updated",
                ],
            },
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(visible_to(request.user))

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.fieldsets)

    @admin.display(description="progress")
    def progress_bar(self, obj: TrainingJob) -> str:
        return format_html(
            '<progress value="{}" max="1" title="{}" class="job-progress">{}</progress>'
            ' <span class="job-percent">{}</span>',
            f"{obj.progress:.3f}",
            obj.get_stage_display(),
            f"{obj.progress:.0%}",
            f"{obj.progress:.0%}",
        )

    @admin.display(description="status")
    def job_status(self, obj: TrainingJob) -> str:
        return format_html('<span id="job-status">{}</span>', obj.get_status_display())

    @admin.display(description="stage")
    def job_stage(self, obj: TrainingJob) -> str:
        return format_html('<span id="job-stage">{}</span>', obj.get_stage_display())

    @admin.display(description="error")
    def error(self, obj: TrainingJob) -> str:
        if not obj.error_code:
            return "-"
        return format_html(
            "<code>{}</code>: {}{}", obj.error_code, obj.error_message, table(param_rows(obj.error_extra))
        )

    @admin.display(description="holdout metrics")
    def metric_table(self, obj: TrainingJob) -> str:
        return table(metric_rows(obj.metrics))

    @admin.display(description="backtest (rolling origin)")
    def backtest_table(self, obj: TrainingJob) -> str:
        return table(backtest_rows(obj.backtest))

    @admin.display(description="rows and features")
    def count_table(self, obj: TrainingJob) -> str:
        return table(metric_rows(obj.counts))

    @admin.display(description="rows trained on (lineage)")
    def lineage_table(self, obj: TrainingJob) -> str:
        return lineage_html(obj.lineage)

    @admin.display(description="requested")
    def param_table(self, obj: TrainingJob) -> str:
        return table(param_rows(obj.params))

    @admin.display(description="used (size bounds from the budget)")
    def params_used_table(self, obj: TrainingJob) -> str:
        return table(param_rows(obj.params_used))

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: TrainingJob) -> str:
        return when(obj.created_at)

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: TrainingJob) -> str:
        return when(obj.started_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: TrainingJob) -> str:
        return when(obj.finished_at)

    @admin.display(description="duration")
    def duration(self, obj: TrainingJob) -> str:
        seconds = obj.duration_seconds
        return "-" if seconds is None else f"{number(seconds)} s"

    @admin.display(description="dispatched to the broker")
    def dispatched(self, obj: TrainingJob) -> str:
        return when(obj.dispatched_at)

    @admin.display(description="heartbeat")
    def heartbeat(self, obj: TrainingJob) -> str:
        return when(obj.heartbeat_at)

    @admin.display(description="updated")
    def updated(self, obj: TrainingJob) -> str:
        return when(obj.updated_at)

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_cancel"
        return [
            path("<path:object_id>/cancel/", self.admin_site.admin_view(self.cancel_view), name=name),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        can_cancel = (
            job is not None
            and not job.is_finished
            and job.stage != TrainingJob.Stage.REGISTERING
            and request.user.has_perm("training.add_trainingjob")
        )
        extra = {**(extra_context or {}), "can_cancel": can_cancel}
        if job is not None and not job.is_finished:
            extra["job_poll"] = _job_poll(job)
        return super().change_view(request, object_id, form_url, extra)

    def cancel_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("training.add_trainingjob"):
            raise PermissionDenied
        try:
            job = training_job_cancel(job_id=int(object_id), user=request.user)
        except TrainingJob.DoesNotExist as exc:
            raise PermissionDenied from exc
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"{job} is cancelled.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:training_trainingjob_change", args=[object_id]))

    @admin.display(description="links")
    def links(self, obj: TrainingJob) -> str:
        return format_html_join("", '<div>{}: <a href="{}">{}</a></div>', training_job_links(obj)) or "-"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # A job is written by its task only: the page is for reading (no Save buttons).
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _job_poll(job: TrainingJob) -> dict:
    """What the page's script needs to follow a job through ``GET /train/<id>`` until it ends."""
    return {
        "url": reverse("training-job-detail", args=[job.pk]),
        # As often as the worker writes its progress.
        "interval_ms": max(1000, round(settings.MDS_PROGRESS_INTERVAL * 1000)),
        "statuses": dict(TrainingJob.Status.choices),
        "stages": dict(TrainingJob.Stage.choices),
        "finished": [status for status in TrainingJob.Status if TrainingJob(status=status).is_finished],
        "uncancellable_stages": [TrainingJob.Stage.REGISTERING],
    }


def backtest_rows(backtest: dict) -> list[tuple[str, str]]:
    """A job's backtest as rows: each fold's errors, their mean ± sd, and ``auto``'s leaderboard (the plot of
    error by fold is on the version's page)."""
    if not backtest.get("folds"):
        return []

    def errors(values: dict, suffix: str = "") -> str:
        return " · ".join(f"{label} {number(values[key + suffix])}" for key, label in _ERRORS)

    rows = [
        (
            f"fold {fold['fold']}: {fold['test_from'][:16]} → {fold['test_to'][:16]}, {fold['train_rows']} rows fit",
            errors(fold),
        )
        for fold in backtest["folds"]
    ]
    spread = " · ".join(
        f"{label} {number(backtest[key + '_mean'])} ± {number(backtest[key + '_sd'])}" for key, label in _ERRORS
    )
    rows.append((f"{ml.backtests.candidate_label(backtest)}, mean ± sd", spread))
    rows += [
        (f"candidate {ml.backtests.candidate_label(entry)}", errors(entry, "_mean"))
        for entry in backtest.get("leaderboard", [])
    ]
    return rows


_ERRORS = (("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R²"))


def lineage_html(lineage: dict) -> str:
    """A retraining's lineage as a table: per dataset of the series, the rows taken and their time span."""
    if not lineage:
        return "-"
    rows = format_html_join(
        "",
        "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}–{}</td><td>{} → {}</td><td>{}–{}</td></tr>",
        (
            (
                reverse("admin:training_dataset_change", args=[part["dataset"]]),
                part["dataset"],
                part["n_rows"],
                part["row_first"],
                part["row_last"],
                part["first_timestamp"],
                part["last_timestamp"],
                part["joined_row_first"],
                part["joined_row_last"],
            )
            for part in lineage.get("segments", [])
        ),
    )
    window = lineage.get("window") or "the whole series"
    return format_html(
        "<p>{} rows; window: {} (rows after {})</p><table><tr><th>dataset</th><th>rows</th><th>file rows</th>"
        "<th>timestamps</th><th>joined rows</th></tr>{}</table>",
        lineage.get("n_rows"),
        window,
        lineage.get("after") or "-",
        rows,
    )


class SeriesSegmentInline(admin.TabularInline):
    model = SeriesSegment
    extra = 0
    can_delete = False
    readonly_fields = [
        "position",
        "dataset",
        "kind",
        "from_job",
        "n_rows",
        "first_timestamp",
        "last_timestamp",
        "appended",
    ]
    fields = tuple(readonly_fields)

    @admin.display(description="source")
    def kind(self, obj: SeriesSegment) -> str:
        return obj.get_source_display()

    @admin.display(description="appended")
    def appended(self, obj: SeriesSegment) -> str:
        return when(obj.created_at)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DatasetSeries)
class DatasetSeriesAdmin(admin.ModelAdmin):
    """A model's series (appended through ``POST /models/<name>/data``) and the retrainings it fed."""

    list_display = ["model_name", "target_column", "timestamp_column", "segment_count", "created_at"]
    search_fields = ["=model_name"]
    readonly_fields = ["model_name", "target_column", "timestamp_column", "columns", "created_by", "retrainings"]
    fields = tuple(readonly_fields)
    inlines = [SeriesSegmentInline]

    @admin.display(description="segments")
    def segment_count(self, obj: DatasetSeries) -> int:
        return obj.segments.count()

    @admin.display(description="retrainings")
    def retrainings(self, obj: DatasetSeries) -> str:
        jobs = TrainingJob.objects.filter(model_name=obj.model_name).exclude(trigger="").order_by("-pk")[:20]
        return (
            format_html_join(
                ", ",
                "<a href='{}'>job {}</a> ({}, {}, v{})",
                (
                    (
                        reverse("admin:training_trainingjob_change", args=[job.pk]),
                        job.pk,
                        job.trigger,
                        job.status,
                        job.registered_version or "-",
                    )
                    for job in jobs
                ),
            )
            or "-"
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RetrainRequest)
class RetrainRequestAdmin(admin.ModelAdmin):
    """Policy triggers not yet acted on (a broker or a dependency was down, or their start keeps failing): beat's
    schedule check starts them. A maintainer may drop one."""

    list_display = ["model_name", "trigger", "created_at", "attempts", "last_error"]
    list_filter = ["trigger"]
    search_fields = ["=model_name"]
    readonly_fields = ["model_name", "trigger", "created_at", "attempts", "last_error"]
    fields = tuple(readonly_fields)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def model_series_panels(model: RegisteredModel) -> list[Panel]:
    """A model's dataset series on its page in the mirror: each segment, and the retrainings it fed."""
    series = DatasetSeries.objects.filter(model_name=model.name).first()
    if series is None:
        return []
    segments = series.segments.select_related("dataset").order_by("position")
    rows = [
        (
            f"#{segment.position} {segment.get_source_display().lower()}: {segment.dataset.original_name}",
            f"{segment.n_rows} rows, {when(segment.first_timestamp)} → {when(segment.last_timestamp)}, "
            f"appended {when(segment.created_at)}",
        )
        for segment in segments
    ]
    link = format_html(
        '<p><a href="{}">The series and its retrainings</a></p>',
        reverse("admin:training_datasetseries_change", args=[series.pk]),
    )
    return [Panel("Dataset series", format_html("{}{}", table(rows), link))]
