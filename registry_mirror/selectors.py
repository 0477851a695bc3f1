"""Reads of the registry mirror."""

from urllib.parse import quote

from django.conf import settings
from django.db.models import QuerySet

from .models import AliasMove, ModelVersion, RegisteredModel, TrainedVersion


def registered_model_list(*, include_deleted: bool = False) -> QuerySet[RegisteredModel]:
    models = RegisteredModel.objects.order_by("name")
    return models if include_deleted else models.filter(deleted=False)


def model_training_allowed(*, model: RegisteredModel | None, user) -> bool:
    """Whether ``user`` may train new versions of ``model`` (``None``: a name nobody holds yet, free to claim).

    Maintainers (``registry_mirror.train_any_model``) may train every model; others their own and those shared with
    one of their groups. A model without an owner is the maintainers' until one of them sets its owner.
    """
    if user is None or not user.is_authenticated:
        return False
    if user.has_perm("registry_mirror.train_any_model") or model is None:
        return True
    if model.owner_id is None:
        return False
    if model.owner_id == user.pk:
        return True
    # all(): a listing prefetches the groups; the user's groups are asked only of a model shared with some.
    shared = [group.pk for group in model.shared_with.all()]
    return bool(shared) and user.groups.filter(pk__in=shared).exists()


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
