"""Moving and removing aliases: in MLflow first, then in the mirror, with an audit row for every move.

Promotion is gated: an alias moves to a version whose holdout RMSE is worse than the current holder's by more
than ``MDS_PROMOTION_TOLERANCE`` only when forced, and the audit row says it was.
"""

import re
from typing import Any

from django.conf import settings
from django.db import transaction

from core.contract import ALIAS_PATTERN, MODEL_NAME_PATTERN
from core.errors import ApplicationError, Conflict, NotFound

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


def alias_name_clean(alias: str) -> str:
    """``alias`` without a leading ``@``; ``ApplicationError`` (``invalid_alias``) if MDS could not serve it."""
    alias = alias.strip().removeprefix("@")
    # `latest` means the newest version to /predict; MLflow refuses it as an alias too.
    if not re.match(ALIAS_PATTERN, alias) or alias.lower() == "latest":
        raise ApplicationError(
            f"{alias!r} is not an alias name: a letter, then letters, digits, '_' or '-' (and not 'latest').",
            code="invalid_alias",
            extra={"alias": alias},
        )
    return alias


def model_alias_set(
    *,
    name: str,
    alias: str,
    version: int,
    user,
    force: bool = False,
    source: str = AliasMove.Source.API,
) -> AliasMove | None:
    """Point ``alias`` of model ``name`` at ``version``: in MLflow first, then in the mirror, with an audit row.

    The gate: if the alias points at another version whose holdout RMSE beats ``version``'s by more than
    ``MDS_PROMOTION_TOLERANCE`` (or ``version`` has no RMSE to compare), the move needs ``force``.

    Returns:
        The audit row, or ``None`` if the alias already pointed at this version (nothing moved).

    Raises:
        NotFound: no such model or version in MLflow.
        Conflict: ``worse_than_current`` or ``unknown_rmse`` without ``force``; MLflow was not changed.
        ApplicationError: the alias name is not allowed; MLflow was not changed.
        MlflowUnavailable: MLflow could not be reached; nothing was changed.
    """
    alias = alias_name_clean(alias)
    current = _aliases_of(name).get(alias)
    if current == version:
        return None
    problem = _promotion_problem(name, alias, version, current) if current is not None else None
    if problem is not None and not force:
        raise problem
    gateway.model_alias_set(name=name, alias=alias, version=version)
    return _alias_mirror(
        name=name, alias=alias, previous=current, version=version, user=user, source=source, forced=bool(problem)
    )


def model_alias_remove(*, name: str, alias: str, user, source: str = AliasMove.Source.API) -> AliasMove:
    """Remove ``alias`` from model ``name``: in MLflow first, then in the mirror, with an audit row.

    Raises:
        NotFound: no such model, or it has no such alias.
        MlflowUnavailable: MLflow could not be reached; nothing was changed.
    """
    alias = alias.strip().removeprefix("@")
    current = _aliases_of(name).get(alias)
    if current is None:
        raise NotFound(f"Model {name!r} has no alias {alias!r}.", extra={"model_name": name, "alias": alias})
    gateway.model_alias_delete(name=name, alias=alias)
    return _alias_mirror(name=name, alias=alias, previous=current, version=None, user=user, source=source)


def model_first_version_promote(*, name: str, version: int, user) -> AliasMove | None:
    """Give a new model's first version the serving alias (``MDS_SERVING_ALIAS``), unless the model has it already.

    Only version 1 qualifies: later trainings never move the alias, promotion does.
    """
    alias = settings.MDS_SERVING_ALIAS
    if version != 1 or alias in gateway.model_aliases(name=name):
        return None
    gateway.model_alias_set(name=name, alias=alias, version=version)
    return _alias_mirror(
        name=name, alias=alias, previous=None, version=version, user=user, source=AliasMove.Source.FIRST_VERSION
    )


def _aliases_of(name: str) -> dict[str, int]:
    # A name MDS could not have registered is no model of ours, and never reaches MLflow's filter syntax.
    if not re.match(MODEL_NAME_PATTERN, name):
        raise NotFound(f"There is no registered model {name!r}.", extra={"model_name": name})
    return gateway.model_aliases(name=name)


def _holdout_rmse(name: str, version: int) -> float | None:
    """The holdout RMSE training logged on ``version``'s run (MLflow's word, fresher than the mirror's)."""
    found = gateway.model_version_resolve(name=name, version=str(version))
    if not found.run_id:
        return None
    try:
        rmse = gateway.run_data_get(run_id=found.run_id).metrics.get("rmse")
    except NotFound:
        return None
    return None if rmse is None else float(rmse)


def _promotion_problem(name: str, alias: str, version: int, current: int) -> Conflict | None:
    """Why moving ``alias`` from ``current`` to ``version`` needs ``force``, or ``None`` if it passes the gate."""
    rmse = _holdout_rmse(name, version)
    current_rmse = _holdout_rmse(name, current)
    extra = {"version": version, "rmse": rmse, "current_version": current, "current_rmse": current_rmse}
    if current_rmse is None:
        return None
    if rmse is None:
        return Conflict(
            f"Version {version} of {name!r} has no holdout RMSE to compare with version {current} (@{alias}); "
            "send force=true to promote it anyway.",
            code="unknown_rmse",
            extra=extra,
        )
    tolerance = settings.MDS_PROMOTION_TOLERANCE
    if rmse > current_rmse * (1 + tolerance):
        return Conflict(
            f"Version {version} of {name!r} has a holdout RMSE of {rmse:.6g}, worse than the {current_rmse:.6g} of "
            f"version {current} (@{alias}) by more than {tolerance:.0%}; send force=true to promote it anyway.",
            code="worse_than_current",
            extra={**extra, "tolerance": tolerance},
        )
    return None


@transaction.atomic
def _alias_mirror(
    *, name: str, alias: str, previous: int | None, version: int | None, user, source: str, forced: bool = False
) -> AliasMove:
    """Mirror a move MLflow has made (``previous`` -> ``version``, ``None`` for no version) and audit it.

    The mirror may not have the model or version yet (a training that just registered it): the rows it has are
    updated, and the next sync finds the alias where it already is, so it records no second move.
    """
    model, _ = RegisteredModel.objects.select_for_update().get_or_create(name=name)
    for row in ModelVersion.objects.filter(registered_model=model, aliases__icontains=f'"{alias}"'):
        if alias in row.aliases:
            row.aliases = [a for a in row.aliases if a != alias]
            save_checked(row)
    aliases = {key: number for key, number in model.aliases.items() if key != alias}
    if version is not None:
        aliases[alias] = version
        target = ModelVersion.objects.filter(registered_model=model, version=version).first()
        if target is not None:
            target.aliases = sorted({*target.aliases, alias})
            save_checked(target)
    model.aliases = aliases
    save_checked(model)
    move = AliasMove(
        model_name=name,
        alias=alias,
        from_version=previous,
        to_version=version,
        source=source,
        moved_by=user if user is not None and user.is_authenticated else None,
        forced=forced,
    )
    save_checked(move)
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
