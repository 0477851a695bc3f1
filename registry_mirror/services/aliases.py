"""Moving and removing aliases: MDS's promotion record (``ServedAlias``), set in MLflow too, with an audit row.

These services are the only writers of what an alias serves. MLflow's alias is set as well, so its UI shows it,
but serving never reads it: an alias moved directly in MLflow is found by the sync, audited as *external*, and
served only once a maintainer accepts it here (``model_alias_accept``), through the same gate.

Promotion is gated: an alias moves only to a version MDS serves (trained or adopted), and to one whose holdout
RMSE is worse than the current holder's by more than ``MDS_PROMOTION_TOLERANCE`` only when forced, and the
audit row says it was.
"""

import re
from typing import Any

from django.conf import settings
from django.db import transaction

from core import events
from core.contract import ALIAS_PATTERN, MODEL_NAME_PATTERN, VersionRef
from core.errors import ApplicationError, Conflict, NotFound

from .. import gateway, selectors
from ..models import AliasMove, ModelVersion, RegisteredModel, ServedAlias
from ..signals import aliases_moved


def alias_moves_record(model_name: str, old: dict[str, int], new: dict[str, int]) -> list[AliasMove]:
    """Audit every alias whose version differs between ``old`` and ``new`` (alias -> version) maps of MLflow's.

    A sync found these moves already made in MLflow. One that agrees with MDS's promotion record is MDS's own
    move seen late (``SYNC``); any other was made directly in MLflow (``EXTERNAL``) and serves nothing.
    """
    served = selectors.served_aliases_of(name=model_name)
    moves = [
        AliasMove(
            model_name=model_name,
            alias=alias,
            from_version=old.get(alias),
            to_version=new.get(alias),
            source=AliasMove.Source.SYNC if served.get(alias) == new.get(alias) else AliasMove.Source.EXTERNAL,
        )
        for alias in sorted(set(old) | set(new))
        if old.get(alias) != new.get(alias)
    ]
    for move in moves:
        save_checked(move)
        # MDS's own move seen late was told when MDS made it.
        if move.source == AliasMove.Source.EXTERNAL:
            alias_moved_emit(move)
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
    live_evidence: bool = False,
) -> AliasMove | None:
    """Point ``alias`` of model ``name`` at ``version`` in MDS's promotion record (and in MLflow), with an audit row.

    The gate: ``version`` must be one MDS serves (trained, or adopted by a maintainer); and if the alias points at
    another version whose holdout RMSE beats ``version``'s by more than ``MDS_PROMOTION_TOLERANCE`` (or
    ``version`` has no RMSE to compare), the move needs ``force``. With ``live_evidence`` (a live trial's paired
    comparison found ``version`` better on the same rows) that comparison replaces the holdouts': a retrained
    version's holdout is a later period than the one it would replace, so their RMSEs score different rows.
    MLflow is written first, so a failure there changes nothing; an alias moved directly in MLflow to another
    version is put back where MDS's record says.

    Returns:
        The audit row, or ``None`` if the alias already pointed at this version (nothing moved).

    Raises:
        NotFound: no such model or version.
        Conflict: ``version_not_adopted``, or ``worse_than_current``/``unknown_rmse`` without ``force``; nothing
            was changed.
        ApplicationError: the alias name is not allowed; nothing was changed.
        MlflowUnavailable: MLflow could not be reached; nothing was changed.
    """
    alias = alias_name_clean(alias)
    model_name_check(name)
    selectors.served_version_number(
        name=name, reference=VersionRef(number=version)
    )  # NotFound, or Conflict if not adopted
    current = selectors.served_aliases_of(name=name).get(alias)
    if current == version:
        if gateway.model_aliases(name=name).get(alias) != version:
            gateway.model_alias_set(name=name, alias=alias, version=version)
            _alias_mirror(name=name, alias=alias, version=version)
        return None
    problem = _promotion_problem(name, alias, version, current) if current is not None and not live_evidence else None
    if problem is not None and not force:
        raise problem
    gateway.model_alias_set(name=name, alias=alias, version=version)
    return _alias_record(name=name, alias=alias, version=version, user=user, source=source, forced=bool(problem))


def model_alias_accept(*, name: str, alias: str, user, force: bool = False) -> tuple[int, AliasMove | None]:
    """Serve what ``alias`` points at in MLflow: the move made there directly, passed through ``model_alias_set``.

    The same gate applies as to any move (the version adopted, its RMSE no worse unless ``force``); the audit row
    says it was accepted.

    Returns:
        The version the alias now serves, and the audit row (``None`` if MDS already served it there).

    Raises:
        NotFound: MLflow has no such alias on the model; and what ``model_alias_set`` raises.
    """
    alias = alias_name_clean(alias)
    model_name_check(name)
    version = gateway.model_aliases(name=name).get(alias)
    if version is None:
        raise NotFound(f"MLflow has no alias {alias!r} on {name!r}.", extra={"model_name": name, "alias": alias})
    move = model_alias_set(
        name=name, alias=alias, version=version, user=user, force=force, source=AliasMove.Source.ACCEPTED
    )
    return version, move


def model_alias_remove(*, name: str, alias: str, user, source: str = AliasMove.Source.API) -> AliasMove:
    """Remove ``alias`` from model ``name``: from MLflow first, then from MDS's record, with an audit row.

    Raises:
        NotFound: no such model, or MDS's record has no such alias.
        MlflowUnavailable: MLflow could not be reached; nothing was changed.
    """
    alias = alias.strip().removeprefix("@")
    model_name_check(name)
    current = selectors.served_aliases_of(name=name).get(alias)
    if current is None:
        raise NotFound(f"Model {name!r} has no alias {alias!r}.", extra={"model_name": name, "alias": alias})
    if alias in gateway.model_aliases(name=name):
        gateway.model_alias_delete(name=name, alias=alias)
    return _alias_record(name=name, alias=alias, version=None, user=user, source=source)


def model_first_version_promote(*, name: str, version: int, user) -> AliasMove | None:
    """Give a new model's first version the serving alias (``MDS_SERVING_ALIAS``), unless the model has it already.

    Only version 1 qualifies: later trainings never move the alias, promotion does.
    """
    alias = settings.MDS_SERVING_ALIAS
    if version != 1 or alias in selectors.served_aliases_of(name=name):
        return None
    gateway.model_alias_set(name=name, alias=alias, version=version)
    return _alias_record(name=name, alias=alias, version=version, user=user, source=AliasMove.Source.FIRST_VERSION)


def model_challenger_set(*, name: str, version: int, user) -> AliasMove | None:
    """Point the challenger alias (``MDS_CHALLENGER_ALIAS``) of ``name`` at the retrained ``version``, audited as
    ``retrain``.

    A challenger is a candidate, not a promotion: the RMSE gate does not apply (the live trial judges it), and the
    serving alias is never touched here.

    Returns:
        The audit row, or ``None`` if the alias already pointed at this version.

    Raises:
        ImproperlyConfigured: the challenger alias is the serving alias.
        NotFound, Conflict: ``version`` is not one MDS serves. MlflowUnavailable: nothing was changed.
    """
    from django.core.exceptions import ImproperlyConfigured

    alias = alias_name_clean(settings.MDS_CHALLENGER_ALIAS)
    if alias == settings.MDS_SERVING_ALIAS:
        raise ImproperlyConfigured("MDS_CHALLENGER_ALIAS must differ from MDS_SERVING_ALIAS.")
    selectors.served_version_number(name=name, reference=VersionRef(number=version))
    if selectors.served_aliases_of(name=name).get(alias) == version:
        return None
    gateway.model_alias_set(name=name, alias=alias, version=version)
    return _alias_record(name=name, alias=alias, version=version, user=user, source=AliasMove.Source.RETRAIN)


def model_name_check(name: str) -> None:
    """``NotFound`` for a name MDS could not have registered."""
    # A name MDS could not have registered is no model of ours, and never reaches MLflow's filter syntax.
    if not re.match(MODEL_NAME_PATTERN, name):
        raise NotFound(f"There is no registered model {name!r}.", extra={"model_name": name})


def _holdout_rmse(name: str, version: int) -> float | None:
    """The holdout RMSE training logged on ``version``'s run (MLflow's word, fresher than the mirror's)."""
    found = gateway.model_version_resolve(name=name, version=VersionRef(number=version))
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
def _alias_record(*, name: str, alias: str, version: int | None, user, source: str, forced: bool = False) -> AliasMove:
    """Record in MDS's promotion record a move MLflow has made (``None``: removed), mirror it, and audit it."""
    set_by = user if user is not None and user.is_authenticated else None
    if version is None:
        record = ServedAlias.objects.select_for_update().filter(model_name=name, alias=alias).first()
        previous = record.version if record is not None else None
        if record is not None:
            record.delete()
    else:
        # get_or_create: two first moves of one alias at once both end on the one row, never on an IntegrityError.
        record, created = ServedAlias.objects.select_for_update().get_or_create(
            model_name=name, alias=alias, defaults={"version": version, "set_by": set_by}
        )
        previous = None if created else record.version
        if not created:
            record.version, record.set_by = version, set_by
            save_checked(record)
    _alias_mirror(name=name, alias=alias, version=version)
    # This process serves the new version from its next request; the others see the new move's id (selectors).
    transaction.on_commit(lambda: aliases_moved.send(sender=ServedAlias, model_name=name))
    move = AliasMove(
        model_name=name,
        alias=alias,
        from_version=previous,
        to_version=version,
        source=source,
        moved_by=set_by,
        forced=forced,
    )
    save_checked(move)
    alias_moved_emit(move)
    return move


def alias_moved_emit(move: AliasMove) -> None:
    """Tell ``ALIAS_MOVED`` (webhooks) in the transaction that records ``move``."""
    events.emit(
        events.ALIAS_MOVED,
        {
            "model_name": move.model_name,
            "alias": move.alias,
            "from_version": move.from_version,
            "to_version": move.to_version,
            "source": str(move.source),
            "forced": move.forced,
            "user": move.moved_by.get_username() if move.moved_by is not None else None,
        },
    )


@transaction.atomic
def _alias_mirror(*, name: str, alias: str, version: int | None) -> None:
    """Mirror in MLflow's copy (``aliases`` of the mirror's rows) a move MDS has just made in MLflow.

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
