"""Reads of the registry mirror."""

from typing import Any
from urllib.parse import quote

from django.apps import apps
from django.conf import settings
from django.db.models import QuerySet

from .models import AliasMove, ModelVersion, RegisteredModel

PLOTS = {
    "predicted_vs_actual": "Holdout: predicted vs actual",
    "feature_importances": "Feature importances",
}


def registered_model_list(*, include_deleted: bool = False) -> QuerySet[RegisteredModel]:
    models = RegisteredModel.objects.order_by("name")
    return models if include_deleted else models.filter(deleted=False)


def model_version_list(*, name: str | None = None, include_deleted: bool = False) -> QuerySet[ModelVersion]:
    versions = ModelVersion.objects.order_by("name", "-version")
    if name is not None:
        versions = versions.filter(name=name)
    return versions if include_deleted else versions.filter(deleted=False)


def alias_moves_of(*, model_name: str, limit: int = 20) -> list[AliasMove]:
    return list(AliasMove.objects.filter(model_name=model_name).select_related("moved_by")[:limit])


def model_version_origin(version: ModelVersion) -> tuple[Any, Any]:
    """The training job and dataset that produced ``version``, when this MDS trained it; else ``None``s.

    Resolved through the app registry, not an import: the training app stands on this one, not the reverse.
    """
    try:
        job_model = apps.get_model("training", "TrainingJob")
        dataset_model = apps.get_model("training", "Dataset")
    except LookupError:
        return None, None
    job = job_model.objects.select_related("dataset").filter(key=version.job_key).first() if version.job_key else None
    if job is not None:
        return job, job.dataset
    dataset = dataset_model.objects.filter(sha256=version.dataset_sha256).first() if version.dataset_sha256 else None
    return None, dataset


def mlflow_ui_links(version: ModelVersion) -> dict[str, str]:
    base = settings.MLFLOW_UI_URL.rstrip("/")
    name = quote(version.name, safe="")
    links = {
        "model": f"{base}/#/models/{name}",
        "version": f"{base}/#/models/{name}/versions/{version.version}",
    }
    if version.run_id and version.experiment_id:
        links["run"] = f"{base}/#/experiments/{version.experiment_id}/runs/{version.run_id}"
    return links
