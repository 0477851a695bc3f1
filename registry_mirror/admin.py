"""Browsing the registry mirror: read-only lists and pages, with the training plots streamed from MLflow.

What writes: the sync button on every mirror list (MLflow's copy), and on a version's page the alias form, the
"accept" buttons for aliases moved directly in MLflow and the "adopt" button for a version registered there;
those three go through the same gated services as the API and are the only ways to change what is served. A
model's owner and the groups it is shared with, MDS's own, are the one part of a mirror row maintainers edit.
"""

import functools

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from core.contract import PLOTS, plot_path
from core.display import metric_label, metric_rows, number, param_rows, table, when
from core.errors import ApplicationError, NotFound

from . import gateway, selectors
from .admin_parts import AliasFilter, AliasForm, CappedCountPaginator, FormatFilter
from .models import AliasMove, ModelVersion, RegisteredModel, RetrainPolicy, ServedAlias, TrainedVersion
from .origins import model_version_origin_links
from .panels import model_version_panels, registered_model_panels
from .services import (
    model_access_set,
    model_alias_accept,
    model_alias_remove,
    model_alias_set,
    model_version_adopt,
    registry_mirror_sync,
)

NOT_SERVED = "external, not served until adopted"


def _admin_write(permission: str):
    """The admin's write views take a POST from a user holding ``permission``, nothing else."""

    def decorate(view):
        @functools.wraps(view)
        def guarded(self, request, *args, **kwargs):
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            if not request.user.has_perm(permission):
                raise PermissionDenied
            return view(self, request, *args, **kwargs)

        return guarded

    return decorate


class ReadOnlyMirrorAdmin(admin.ModelAdmin):
    """Mirror rows are written by the sync only; the change page is for reading."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_sync_mirror": request.user.has_perm("registry_mirror.sync_mirror"), **(extra_context or {})}
        return super().changelist_view(request, extra)


def _metric_display(field: str):
    """A version's ``field`` (a holdout metric) as a column and a page field: named as in the reports, rounded."""

    @admin.display(description=metric_label(field), ordering=field)
    def display(self, obj) -> str:
        return number(getattr(obj, field))

    return display


def _deletion_display():
    # Not the admin's boolean icon: a red cross beside every row that is *not* deleted reads as an alarm.
    @admin.display(description="deleted in MLflow", ordering="deleted")
    def display(self, obj) -> str:
        if not obj.deleted:
            return "no"
        # deleted_at: when a sync found it gone from MLflow.
        return f"yes, found gone {when(obj.deleted_at)}" if obj.deleted_at else "yes"

    return display


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyMirrorAdmin):
    list_display = [
        "name",
        "version",
        "status",
        "served_state",
        "alias_list",
        "format_list",
        "holdout_r2",
        "holdout_rmse",
        "short_run_id",
        "short_dataset",
        "mlflow_created_at",
        "deletion",
    ]
    list_display_links = ["name", "version"]
    list_filter = ["registered_model", AliasFilter, "status", FormatFilter, "deleted"]
    # Prefix matches use the indexes; a pasted run id or a hash prefix finds its version.
    search_fields = ["^run_id", "^dataset_sha256", "=name"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "version",
                    "status",
                    "served_state",
                    "served_alias_list",
                    "aliases",
                    "formats",
                    "deletion",
                    "description",
                ]
            },
        ),
        (
            "Holdout metrics",
            {"fields": ["holdout_r2", "holdout_mae", "holdout_rmse", "onnx_abs_diff", "onnx_rel_diff"]},
        ),
        ("Origin", {"fields": ["origin_links", "dataset_sha256", "job_key"]}),
        (
            "MLflow",
            {"fields": ["run_id", "experiment_id", "model_id", "source", "tag_table", "mlflow_created_at"]},
        ),
        ("Mirror", {"fields": ["mlflow_updated_at", "created_at", "updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [
            *super().get_readonly_fields(request, obj),
            "origin_links",
            "tag_table",
            "served_state",
            "served_alias_list",
            "deletion",
            "holdout_r2",
            "holdout_mae",
            "holdout_rmse",
            "onnx_abs_diff",
            "onnx_rel_diff",
        ]

    holdout_r2 = _metric_display("r2")
    holdout_mae = _metric_display("mae")
    holdout_rmse = _metric_display("rmse")
    onnx_abs_diff = _metric_display("onnx_max_abs_diff")
    onnx_rel_diff = _metric_display("onnx_max_rel_diff")
    deletion = _deletion_display()

    def get_queryset(self, request):
        record = TrainedVersion.objects.filter(name=OuterRef("name"), version=OuterRef("version"))
        return super().get_queryset(request).annotate(served_origin=Subquery(record.values("origin")[:1]))

    @admin.display(description="served")
    def served_state(self, obj: ModelVersion) -> str:
        origin = getattr(obj, "served_origin", None)
        if origin is None:
            origin = selectors.version_origins(name=obj.name).get(obj.version)
        return TrainedVersion.Origin(origin).label if origin else NOT_SERVED

    @admin.display(description="served aliases")
    def served_alias_list(self, obj: ModelVersion) -> str:
        served = selectors.served_aliases_of(name=obj.name)
        return ", ".join(f"@{alias}" for alias, number in sorted(served.items()) if number == obj.version) or "-"

    @admin.display(description="MLflow aliases")
    def alias_list(self, obj: ModelVersion) -> str:
        return ", ".join(obj.aliases)

    @admin.display(description="formats")
    def format_list(self, obj: ModelVersion) -> str:
        return ", ".join(obj.formats)

    @admin.display(description="run", ordering="run_id")
    def short_run_id(self, obj: ModelVersion) -> str:
        return obj.run_id[:12]

    @admin.display(description="dataset sha256")
    def short_dataset(self, obj: ModelVersion) -> str:
        return obj.dataset_sha256[:12]

    @admin.display(description="tags")
    def tag_table(self, obj: ModelVersion) -> str:
        return format_html_join("", "<div><code>{}</code> = {}</div>", sorted(obj.tags.items())) or "-"

    @admin.display(description="origin")
    def origin_links(self, obj: ModelVersion) -> str:
        links = [(link.label, link.url, link.text) for link in model_version_origin_links(obj)]
        return format_html_join("", '<div>{}: <a href="{}">{}</a></div>', links) or "-"

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("sync/", self.admin_site.admin_view(self.sync_view), name=f"{prefix}_sync"),
            path("<path:object_id>/alias/", self.admin_site.admin_view(self.alias_view), name=f"{prefix}_alias"),
            path("<path:object_id>/adopt/", self.admin_site.admin_view(self.adopt_view), name=f"{prefix}_adopt"),
            path(
                "<path:object_id>/alias/accept/",
                self.admin_site.admin_view(self.alias_accept_view),
                name=f"{prefix}_alias_accept",
            ),
            path(
                "<path:object_id>/alias/remove/",
                self.admin_site.admin_view(self.alias_remove_view),
                name=f"{prefix}_alias_remove",
            ),
            path(
                "<path:object_id>/plots/<slug:plot>.png",
                self.admin_site.admin_view(self.plot_view),
                name=f"{prefix}_plot",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if version is not None:
            links = selectors.mlflow_ui_links(version)
            extra.update(
                mlflow_links=[
                    (label, links[key]) for key, label in [("run", "run"), ("version", "version")] if key in links
                ],
                # Plain runserver starts no MLflow UI: its links say so rather than lead nowhere.
                mlflow_ui=gateway.ui_status() if links else None,
                run_metrics=metric_rows(version.metrics),
                run_params=param_rows(dict(sorted(version.params.items()))),
                plots=[
                    {
                        "name": name,
                        "title": title,
                        "url": reverse("admin:registry_mirror_modelversion_plot", args=[version.pk, name]),
                    }
                    for name, title in PLOTS.items()
                ]
                if version.model_id or version.run_id
                else [],
                alias_moves=selectors.alias_moves_of(model_name=version.name),
                panels=model_version_panels(version),
                alias_form=AliasForm(),
                can_set_alias=request.user.has_perm("registry_mirror.set_alias"),
                **_served_context(version),
            )
        return super().change_view(request, object_id, form_url, extra)

    @staticmethod
    def _changelist_url() -> str:
        return reverse("admin:registry_mirror_modelversion_changelist")

    @_admin_write("registry_mirror.sync_mirror")
    def sync_view(self, request):
        try:
            result = registry_mirror_sync()
        except ApplicationError as exc:
            self.message_user(request, f"Sync failed, the mirror is unchanged: {exc.message}", messages.ERROR)
        else:
            self.message_user(request, f"Synced from MLflow: {result}.", messages.SUCCESS)
        back = request.META.get("HTTP_REFERER", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = self._changelist_url()
        return HttpResponseRedirect(back)

    @_admin_write("registry_mirror.set_alias")
    def alias_view(self, request, object_id):
        version = _version_or_404(object_id)
        page = reverse("admin:registry_mirror_modelversion_change", args=[version.pk])
        form = AliasForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Alias not set: {form.errors['alias'][0]}", messages.ERROR)
            return HttpResponseRedirect(page)
        alias = form.cleaned_data["alias"]
        try:
            move = model_alias_set(
                name=version.name,
                alias=alias,
                version=version.version,
                user=request.user,
                force=form.cleaned_data["force"],
                source=AliasMove.Source.ADMIN,
            )
        except ApplicationError as exc:
            self.message_user(request, f"Alias not set: {exc.message}", messages.ERROR)
        else:
            if move is None:
                self.message_user(request, f"@{alias} already points at {version}.", messages.INFO)
            else:
                moved = f" (moved from v{move.from_version})" if move.from_version else ""
                forced = ", forced past the RMSE gate" if move.forced else ""
                self.message_user(request, f"@{alias} now points at {version}{moved}{forced}.", messages.SUCCESS)
        return HttpResponseRedirect(page)

    @_admin_write("registry_mirror.set_alias")
    def adopt_view(self, request, object_id):
        version = _version_or_404(object_id)
        page = reverse("admin:registry_mirror_modelversion_change", args=[version.pk])
        try:
            _, adopted = model_version_adopt(name=version.name, version=version.version, user=request.user)
        except ApplicationError as exc:
            self.message_user(request, f"Not adopted: {exc.message}", messages.ERROR)
        else:
            if adopted:
                self.message_user(request, f"{version} adopted: MDS serves it now (as ONNX).", messages.SUCCESS)
            else:
                self.message_user(request, f"{version} is already served by MDS.", messages.INFO)
        return HttpResponseRedirect(page)

    @_admin_write("registry_mirror.set_alias")
    def alias_accept_view(self, request, object_id):
        version = _version_or_404(object_id)
        page = reverse("admin:registry_mirror_modelversion_change", args=[version.pk])
        alias = request.POST.get("alias", "")
        try:
            number, move = model_alias_accept(
                name=version.name, alias=alias, user=request.user, force=bool(request.POST.get("force"))
            )
        except ApplicationError as exc:
            self.message_user(request, f"@{alias} not accepted: {exc.message}", messages.ERROR)
        else:
            forced = ", forced past the RMSE gate" if move is not None and move.forced else ""
            self.message_user(request, f"@{alias} of {version.name} now serves v{number}{forced}.", messages.SUCCESS)
        return HttpResponseRedirect(page)

    @_admin_write("registry_mirror.set_alias")
    def alias_remove_view(self, request, object_id):
        version = _version_or_404(object_id)
        page = reverse("admin:registry_mirror_modelversion_change", args=[version.pk])
        alias = request.POST.get("alias", "")
        try:
            model_alias_remove(name=version.name, alias=alias, user=request.user, source=AliasMove.Source.ADMIN)
        except ApplicationError as exc:
            self.message_user(request, f"Alias not removed: {exc.message}", messages.ERROR)
        else:
            self.message_user(request, f"@{alias} removed from {version.name}.", messages.SUCCESS)
        return HttpResponseRedirect(page)

    def plot_view(self, request, object_id, plot):
        version = _version_or_404(object_id)
        has_source = version.model_id or version.run_id
        if plot not in PLOTS or not has_source or not self.has_view_permission(request, version):
            raise Http404("No such plot.")
        try:
            content = gateway.version_plot_read(model_id=version.model_id, run_id=version.run_id, path=plot_path(plot))
        except NotFound as exc:
            raise Http404("This version has no such plot.") from exc
        except ApplicationError as exc:
            return HttpResponse(exc.message, status=503, content_type="text/plain")
        response = HttpResponse(content, content_type="image/png")
        # A run's artifacts never change once logged.
        response["Cache-Control"] = "private, max-age=86400"
        return response


def _served_context(version: ModelVersion) -> dict:
    """What a version's page shows of serving: the version's state, MDS's aliases beside MLflow's."""
    served = selectors.served_aliases_of(name=version.name)
    model = RegisteredModel.objects.filter(name=version.name).first()
    in_mlflow = model.aliases if model is not None else {}
    return {
        "served_origin": selectors.version_origins(name=version.name).get(version.version),
        "served_aliases_here": sorted(alias for alias, number in served.items() if number == version.version),
        "alias_table": [
            {
                "alias": alias,
                "served": served.get(alias),
                "mlflow": in_mlflow.get(alias),
                "external": served.get(alias) != in_mlflow.get(alias),
            }
            for alias in sorted(set(served) | set(in_mlflow))
        ],
    }


def _version_or_404(object_id: str) -> ModelVersion:
    # The URL takes any path, as the admin's own pages do; an id that is not a number names no version.
    try:
        pk = ModelVersion._meta.pk.to_python(object_id)
    except ValidationError as exc:
        raise Http404("No such version.") from exc
    return get_object_or_404(ModelVersion, pk=pk)


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyMirrorAdmin):
    """Mirrored from MLflow but for who may train it: maintainers set the owner and the groups it is shared with."""

    list_display = [
        "name",
        "owner",
        "served_alias_list",
        "alias_list",
        "version_list_link",
        "mlflow_updated_at",
        "deletion",
    ]
    list_filter = ["deleted"]
    list_select_related = ["owner"]
    search_fields = ["name"]
    fields = [
        "name",
        "owner",
        "shared_with",
        "aliases",
        "description",
        "tags",
        "deletion",
        "mlflow_created_at",
        "mlflow_updated_at",
        "created_at",
        "updated_at",
    ]
    filter_horizontal = ["shared_with"]
    deletion = _deletion_display()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        model = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if model is not None:
            extra.update(panels=registered_model_panels(model), **_policy_context(request, model))
        return super().change_view(request, object_id, form_url, extra)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("registry_mirror.share_model")

    def get_readonly_fields(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return [name for name in super().get_readonly_fields(request, obj) if name != "owner"] + ["deletion"]
        return [*super().get_readonly_fields(request, obj), "shared_with", "deletion"]

    def save_model(self, request, obj, form, change):
        # Written by save_related, through the service, once the form's groups are known.
        pass

    def save_related(self, request, form, formsets, change):
        owner = form.cleaned_data["owner"]
        model_access_set(
            name=form.instance.name,
            owner=owner.get_username() if owner is not None else None,
            shared_with=[group.name for group in form.cleaned_data["shared_with"]],
        )

    @admin.display(description="served aliases (MDS)")
    def served_alias_list(self, obj: RegisteredModel) -> str:
        served = selectors.served_aliases_of(name=obj.name)
        return ", ".join(f"@{alias} → v{version}" for alias, version in sorted(served.items())) or "-"

    @admin.display(description="MLflow aliases")
    def alias_list(self, obj: RegisteredModel) -> str:
        served = selectors.served_aliases_of(name=obj.name)
        return ", ".join(
            f"@{alias} → v{version}" + (" (external, not served)" if served.get(alias) != version else "")
            for alias, version in sorted(obj.aliases.items())
        )

    @admin.display(description="versions")
    def version_list_link(self, obj: RegisteredModel) -> str:
        url = reverse("admin:registry_mirror_modelversion_changelist") + f"?registered_model__id__exact={obj.pk}"
        return format_html('<a href="{}">versions</a>', url)


def _policy_context(request, model: RegisteredModel) -> dict:
    """The model's retraining policy as rows, and where a maintainer edits (or sets) it."""
    policy = RetrainPolicy.objects.filter(model_name=model.name).first()
    if policy is None:
        can_add = request.user.has_perm("registry_mirror.add_retrainpolicy")
        url = reverse("admin:registry_mirror_retrainpolicy_add") + f"?model_name={model.name}" if can_add else None
        return {"policy": None, "policy_url": url}
    rows = [
        ("enabled", "yes" if policy.enabled else "no"),
        ("window", policy.window or "the whole series"),
        ("schedule", policy.schedule or "-"),
        ("on new data", "yes" if policy.on_new_data else "no"),
        ("on drift", "yes" if policy.on_drift else "no"),
        (
            "on live MAE degradation",
            f"× {policy.degradation_factor} (from {policy.degradation_min_rows} rows)"
            if policy.degradation_factor
            else "no",
        ),
    ]
    return {
        "policy": policy,
        "policy_table": table(rows),
        "policy_url": reverse("admin:registry_mirror_retrainpolicy_change", args=[policy.pk]),
    }


@admin.register(AliasMove)
class AliasMoveAdmin(ReadOnlyMirrorAdmin):
    list_display = ["created_at", "model_name", "alias", "from_version", "to_version", "source", "forced", "moved_by"]
    list_filter = ["source", "forced", "alias"]
    search_fields = ["=model_name"]
    list_select_related = ["moved_by"]


@admin.register(ServedAlias)
class ServedAliasAdmin(ReadOnlyMirrorAdmin):
    """MDS's promotion record: what each alias serves, written by the gated alias services only."""

    list_display = ["model_name", "alias", "version", "set_by", "updated_at"]
    list_filter = ["alias"]
    search_fields = ["=model_name"]
    list_select_related = ["set_by"]


@admin.register(TrainedVersion)
class TrainedVersionAdmin(ReadOnlyMirrorAdmin):
    """The versions MDS serves and the checksums it trusts: written by trainings and adoptions only."""

    list_display = [
        "name",
        "version",
        "origin",
        "adopted_by",
        "adopted_at",
        "job_key",
        "short_sklearn",
        "short_onnx",
        "created_at",
    ]
    list_filter = ["origin"]
    search_fields = ["=name", "=job_key"]
    list_select_related = ["adopted_by"]

    @admin.display(description="sklearn sha256")
    def short_sklearn(self, obj: TrainedVersion) -> str:
        return obj.sklearn_sha256[:12]

    @admin.display(description="onnx sha256")
    def short_onnx(self, obj: TrainedVersion) -> str:
        return obj.onnx_sha256[:12]


# Retraining policies (a model-level setting, edited by maintainers).
from . import policy_admin  # noqa: E402, F401
