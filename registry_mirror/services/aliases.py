"""Moving an alias: in MLflow first, then in the mirror, with an audit row for every move."""

from typing import Any

from django.db import transaction

from core.errors import ApplicationError

from .. import gateway
from ..models import AliasMove, ModelVersion, RegisteredModel


def alias_moves_record(model_name: str, old: dict[str, int], new: dict[str, int], user=None) -> list[AliasMove]:
    """Audit every alias whose version differs between ``old`` and ``new`` (alias -> version) maps.

    With a ``user`` the move was made in the admin; without, a sync found it already made in MLflow.
    """
    moves = [
        AliasMove(
            model_name=model_name,
            alias=alias,
            from_version=old.get(alias),
            to_version=new.get(alias),
            source=AliasMove.Source.ADMIN if user else AliasMove.Source.SYNC,
            moved_by=user,
        )
        for alias in sorted(set(old) | set(new))
        if old.get(alias) != new.get(alias)
    ]
    for move in moves:
        save_checked(move)
    return moves


def model_alias_set(*, model_version: ModelVersion, alias: str, user) -> AliasMove | None:
    """Point ``alias`` at ``model_version``: in MLflow first, then in the mirror, with an audit row.

    Returns:
        The audit row, or ``None`` if the alias already pointed at this version (nothing moved).

    Raises:
        ApplicationError: the alias name is not allowed or the version is deleted; MLflow was not changed.
        MlflowUnavailable: MLflow could not be reached; nothing was changed.
    """
    alias = alias.strip()
    if not alias:
        raise ApplicationError("An alias needs a name.", code="invalid_alias")
    if model_version.deleted:
        raise ApplicationError(f"{model_version} was deleted in MLflow.", code="deleted_version")
    gateway.model_alias_set(name=model_version.name, alias=alias, version=model_version.version)
    return _alias_mirror(model_version_id=model_version.pk, alias=alias, user=user)


@transaction.atomic
def _alias_mirror(*, model_version_id: int, alias: str, user) -> AliasMove | None:
    target = ModelVersion.objects.select_related("registered_model").get(pk=model_version_id)
    model = RegisteredModel.objects.select_for_update().get(pk=target.registered_model_id)
    previous = model.aliases.get(alias)
    if previous == target.version:
        return None
    for row in ModelVersion.objects.filter(registered_model=model, aliases__icontains=f'"{alias}"'):
        if alias in row.aliases:
            row.aliases = [a for a in row.aliases if a != alias]
            save_checked(row)
    target.refresh_from_db()
    target.aliases = sorted({*target.aliases, alias})
    save_checked(target)
    model.aliases = {**model.aliases, alias: target.version}
    save_checked(model)
    (move,) = alias_moves_record(model.name, {alias: previous} if previous else {}, {alias: target.version}, user=user)
    return move


def assign(obj, values: dict[str, Any]) -> list[str]:
    """Set ``values`` on ``obj``; return the names of the fields that really changed."""
    changed = []
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed.append(name)
    return changed


def save_checked(obj) -> None:
    obj.full_clean(validate_unique=False, validate_constraints=False)
    obj.save()
