from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.contract import MODEL_NAME_PATTERN
from core.errors import ApplicationError, Forbidden
from registry_mirror.services import model_training_check

from . import ml
from .models import Dataset, TrainingJob
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
                job,
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
        url = reverse("admin:training_trainingjob_change", args=[job.pk])
        self.message_user(request, format_html('Started <a href="{}">{}</a> on this file.', url, job), messages.INFO)


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
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "model_name", "created_at"]
    search_fields = ["mlflow_run_id", "dataset__sha256", "model_name", "key"]
    list_select_related = ["dataset"]
    show_full_result_count = False
    change_form_template = "admin/training/trainingjob/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(visible_to(request.user))

    def get_readonly_fields(self, request, obj=None):
        return ["links", "progress_bar", *(field.name for field in TrainingJob._meta.fields)]

    @admin.display(description="progress")
    def progress_bar(self, obj: TrainingJob) -> str:
        return format_html(
            '<progress value="{}" max="1" title="{}">{}</progress> {}',
            f"{obj.progress:.3f}",
            obj.get_stage_display(),
            f"{obj.progress:.0%}",
            f"{obj.progress:.0%}",
        )

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
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "can_cancel": can_cancel})

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
