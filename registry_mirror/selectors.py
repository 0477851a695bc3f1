"""Reads of the registry mirror."""

from urllib.parse import quote

from django.conf import settings
from django.db.models import QuerySet

from .models import AliasMove, ModelVersion, RegisteredModel, TrainedVersion


def registered_model_list(*, include_deleted: bool = False) -> QuerySet[RegisteredModel]:
    models = RegisteredModel.objects.order_by("name")
    return models if include_deleted else models.filter(deleted=False)


def model_version_list(*, name: str | None = None, include_deleted: bool = False) -> QuerySet[ModelVersion]:
    versions = ModelVersion.objects.order_by("name", "-version")
    if name is not None:
        versions = versions.filter(name=name)
    return versions if include_deleted else versions.filter(deleted=False)


def trained_version_get(*, name: str, version: int) -> TrainedVersion | None:
    """The checksums recorded when this service trained ``name`` at ``version``; ``None`` if it did not train it."""
    return TrainedVersion.objects.filter(name=name, version=version).first()


def alias_moves_of(*, model_name: str, limit: int = 20) -> list[AliasMove]:
    return list(AliasMove.objects.filter(model_name=model_name).select_related("moved_by")[:limit])


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
