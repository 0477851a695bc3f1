"""Reads of the registry mirror, and of what MDS serves (its own record, never MLflow's)."""

import re
from typing import cast
from urllib.parse import quote

from django.db.models import Exists, OuterRef, QuerySet

from core.contract import MODEL_NAME_PATTERN, VersionRef
from core.errors import Conflict, NotFound

from .gateway.ui import ui_link
from .models import AliasMove, ModelVersion, RegisteredModel, RetrainPolicy, ServedAlias, TrainedVersion


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


def served_versions_of(*, name: str) -> QuerySet[TrainedVersion]:
    """The versions of ``name`` MDS serves (trained or adopted), newest first; not those deleted in MLflow."""
    deleted = ModelVersion.objects.filter(name=OuterRef("name"), version=OuterRef("version"), deleted=True)
    return (
        TrainedVersion.objects.filter(name=name, version__isnull=False).exclude(Exists(deleted)).order_by("-version")
    )


def served_aliases_of(*, name: str) -> dict[str, int]:
    """MDS's promotion record of ``name``: alias -> the version it serves."""
    return dict(ServedAlias.objects.filter(model_name=name).values_list("alias", "version"))


def served_aliases_by_model(*, names: list[str] | None = None) -> dict[str, dict[str, int]]:
    """MDS's promotion record of every model (or of ``names``): model name -> alias -> version."""
    rows = ServedAlias.objects.all() if names is None else ServedAlias.objects.filter(model_name__in=names)
    record: dict[str, dict[str, int]] = {}
    for name, alias, version in rows.values_list("model_name", "alias", "version"):
        record.setdefault(name, {})[alias] = version
    return record


def served_version_number(*, name: str, reference: VersionRef) -> int:
    """The version ``reference`` (a number, ``latest`` or an alias) stands for in what MDS serves.

    Read from MDS's database only: an alias from its promotion record, ``latest`` as the newest version it trained
    or adopted, a number only if it trained or adopted that version. What MLflow says is never asked.

    Raises:
        NotFound: no such model, alias or version.
        Conflict: ``version_not_adopted``, a version registered directly in MLflow that no maintainer adopted.
    """
    # A name MDS could not have recorded is none of its models, and never reaches the database.
    if not re.match(MODEL_NAME_PATTERN, name):
        raise NotFound(f"There is no registered model {name!r}.", extra={"model_name": name})
    if reference.number is not None:
        number = reference.number
        if TrainedVersion.objects.filter(name=name, version=number).exists():
            return number
        if ModelVersion.objects.filter(name=name, version=number, deleted=False).exists():
            raise version_not_adopted(name=name, version=number)
        raise NotFound(f"Model {name!r} has no version {number}.", extra={"model_name": name, "version": number})
    if reference.is_latest:
        newest = served_versions_of(name=name).values_list("version", flat=True).first()
        if newest is None:
            raise NotFound(f"Model {name!r} has no version MDS serves.", extra={"model_name": name})
        return newest
    alias = reference.alias
    aliased = ServedAlias.objects.filter(model_name=name, alias=alias).values_list("version", flat=True).first()
    if aliased is None:
        raise NotFound(f"Model {name!r} has no alias {alias!r}.", extra={"model_name": name, "alias": alias})
    return aliased


def promotion_generation() -> int:
    """The id of the newest alias move (0: none yet): it changes whenever what an alias serves may have changed.

    Every move MDS makes is audited by a new ``AliasMove`` (``services.aliases``), so a process that caches aliases
    compares this one number, read through the primary key's index, instead of reading every alias again.
    """
    return AliasMove.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def version_not_adopted(*, name: str, version: int) -> Conflict:
    """The refusal of a version registered directly in MLflow, saying how a maintainer adopts it."""
    return Conflict(
        f"Version {version} of {name!r} was registered directly in MLflow and is not served until a maintainer "
        f"adopts it (POST /models/{name}/versions/{version}/adopt).",
        code="version_not_adopted",
        extra={"model_name": name, "version": version, "adopt": f"/models/{name}/versions/{version}/adopt"},
    )


def version_origins(*, name: str) -> dict[int, str]:
    """How MDS came to serve each version of ``name`` it serves: version -> ``TrainedVersion.Origin``."""
    rows = TrainedVersion.objects.filter(name=name, version__isnull=False).values_list("version", "origin")
    # The filter leaves out the rows without a version, which the column's type allows.
    return cast("dict[int, str]", dict(rows))


def alias_moves_of(*, model_name: str, limit: int = 20) -> list[AliasMove]:
    return list(AliasMove.objects.filter(model_name=model_name).select_related("moved_by")[:limit])


def mlflow_ui_links(version: ModelVersion) -> dict[str, str]:
    name = quote(version.name, safe="")
    links = {
        "model": ui_link(f"models/{name}"),
        "version": ui_link(f"models/{name}/versions/{version.version}"),
    }
    if version.run_id and version.experiment_id:
        links["run"] = ui_link(f"experiments/{version.experiment_id}/runs/{version.run_id}")
    return links


def retrain_policies_scheduled() -> list[str]:
    """Names of the models whose enabled retraining policy has a schedule."""
    return list(RetrainPolicy.objects.filter(enabled=True).exclude(schedule="").values_list("model_name", flat=True))


def retrain_policy_of(*, name: str) -> RetrainPolicy | None:
    """``name``'s ``RetrainPolicy`` if it has one and it is enabled, else ``None``."""
    return RetrainPolicy.objects.filter(model_name=name, enabled=True).first()
