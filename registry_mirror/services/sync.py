"""Syncing the mirror from MLflow's registry.

The mirror is MLflow's copy, shown and never served: a version registered or an alias moved directly in MLflow
is found here, counted and audited as *external* (``AliasMove.Source.EXTERNAL``), and served only once a
maintainer adopts or accepts it.

A sync reads everything it needs from MLflow before it writes anything, then applies the difference in one
transaction: a sync that MLflow interrupts leaves the mirror exactly as it was, and a sync that finds nothing
new writes nothing (no row's ``updated_at`` moves).
"""

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core import contract, events
from core.errors import NotFound

from .. import gateway
from ..models import AliasMove, ModelVersion, RegisteredModel, TrainedVersion
from .aliases import alias_moves_record, assign, save_checked

logger = logging.getLogger(__name__)

METRIC_COLUMNS = ("r2", "mae", "rmse", "onnx_max_abs_diff", "onnx_max_rel_diff")
FORMAT_TAGS = {contract.SKLEARN_SHA256_TAG: "sklearn", contract.ONNX_SHA256_TAG: "onnx"}
# Any constant shared by every process: serialises concurrent syncs on PostgreSQL.
_SYNC_LOCK_KEY = 0x6D64735F6D6972


@dataclass
class SyncResult:
    models_created: int = 0
    models_updated: int = 0
    models_deleted: int = 0
    versions_created: int = 0
    versions_updated: int = 0
    versions_deleted: int = 0
    versions_seen: int = 0
    alias_moves: int = 0
    # New versions MDS neither trained nor adopted: mirrored for the admin, not served until adopted.
    versions_external: int = 0
    external_alias_moves: int = 0
    pages: int = 0

    @property
    def changed(self) -> bool:
        return any(
            (
                self.models_created,
                self.models_updated,
                self.models_deleted,
                self.versions_created,
                self.versions_updated,
                self.versions_deleted,
                self.alias_moves,
            )
        )

    def __str__(self) -> str:
        return (
            f"{self.versions_seen} versions in MLflow; versions +{self.versions_created} ~{self.versions_updated} "
            f"-{self.versions_deleted}; models +{self.models_created} ~{self.models_updated} -{self.models_deleted}; "
            f"{self.alias_moves} alias moves; {self.versions_external} new external versions and "
            f"{self.external_alias_moves} alias moves made directly in MLflow (not served until accepted)"
        )


@dataclass
class _Snapshot:
    models: list[gateway.RegistryModel] = field(default_factory=list)
    versions: list[gateway.RegistryVersion] = field(default_factory=list)
    # (name, version) -> the fields that need MLflow calls beyond the listing (run data, formats).
    details: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    pages: int = 0


def registry_mirror_sync(*, model_name: str | None = None) -> SyncResult:
    """Bring the mirror in line with MLflow's registry: upsert every model and version, mark the missing deleted.

    Args:
        model_name: sync only this registered model (as after a training); ``None`` syncs the whole registry.

    Returns:
        What changed. A second sync with nothing new in MLflow returns a result whose ``changed`` is false.

    Raises:
        MlflowUnavailable: MLflow could not be reached; nothing in the mirror was changed.
    """
    snapshot = _snapshot_read(model_name=model_name)
    result = _snapshot_apply(snapshot, model_name=model_name)
    logger.info("Registry mirror sync%s: %s", f" of {model_name!r}" if model_name else "", result)
    return result


def _snapshot_read(*, model_name: str | None) -> _Snapshot:
    page_size = settings.MDS_MIRROR_PAGE_SIZE
    snapshot = _Snapshot()
    snapshot.models = _all_pages(gateway.registered_models_page, page_size, model_name, snapshot)
    snapshot.versions = _all_pages(gateway.model_versions_page, page_size, model_name, snapshot)

    mirrored = ModelVersion.objects.all() if model_name is None else ModelVersion.objects.filter(name=model_name)
    current = {
        (row["name"], row["version"]): row
        for row in mirrored.values("name", "version", "run_id", "mlflow_updated_at", "deleted")
    }
    runs: dict[str, gateway.RunData | None] = {}
    for version in snapshot.versions:
        row = current.get((version.name, version.version))
        if (
            row is not None
            and not row["deleted"]
            and row["run_id"] == version.run_id
            and row["mlflow_updated_at"] == _from_ms(version.updated_ms)
        ):
            continue
        snapshot.details[(version.name, version.version)] = _version_details(version, runs)
    return snapshot


def _all_pages(fetch: Callable[..., gateway.Page], page_size: int, name: str | None, snapshot: _Snapshot) -> list:
    items: list = []
    token = None
    while True:
        page = fetch(page_size=page_size, page_token=token, name=name)
        snapshot.pages += 1
        items.extend(page.items)
        token = page.next_page_token
        if not token:
            return items


def _version_details(version: gateway.RegistryVersion, runs: dict[str, gateway.RunData | None]) -> dict[str, Any]:
    """The fields of a new or changed version that its listing does not carry: run data and formats."""
    run = None
    if version.run_id:
        if version.run_id not in runs:
            try:
                runs[version.run_id] = gateway.run_data_get(run_id=version.run_id)
            except NotFound:
                runs[version.run_id] = None
        run = runs[version.run_id]
    formats = sorted(fmt for tag, fmt in FORMAT_TAGS.items() if tag in version.tags)
    if not formats and version.source:
        formats = gateway.model_version_flavors(source=version.source)
    # MLflow records NaN and infinities; JSON has no such numbers, so they are mirrored as unknown.
    metrics = {key: _finite_or_none(value) for key, value in run.metrics.items()} if run else {}
    return {
        "experiment_id": run.experiment_id if run else "",
        "params": run.params if run else {},
        "metrics": metrics,
        **{column: metrics.get(column) for column in METRIC_COLUMNS},
        "dataset_sha256": (run.tags.get(contract.DATASET_SHA256_TAG, "") if run else "")[:64],
        "formats": formats,
    }


@transaction.atomic
def _snapshot_apply(snapshot: _Snapshot, *, model_name: str | None) -> SyncResult:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_LOCK_KEY])
    now = timezone.now()
    result = SyncResult(pages=snapshot.pages, versions_seen=len(snapshot.versions))
    models = _models_apply(snapshot, model_name=model_name, now=now, result=result)
    _versions_apply(snapshot, models, model_name=model_name, now=now, result=result)
    return result


def _models_apply(
    snapshot: _Snapshot, *, model_name: str | None, now: datetime, result: SyncResult
) -> dict[str, RegisteredModel]:
    scope = RegisteredModel.objects.all() if model_name is None else RegisteredModel.objects.filter(name=model_name)
    existing = {model.name: model for model in scope.select_for_update()}
    seen: dict[str, RegisteredModel] = {}
    for item in snapshot.models:
        values = {
            "description": item.description,
            "tags": item.tags,
            "aliases": item.aliases,
            "mlflow_created_at": _from_ms(item.created_ms),
            "mlflow_updated_at": _from_ms(item.updated_ms),
            "deleted": False,
            "deleted_at": None,
        }
        model = existing.get(item.name)
        old_aliases = model.aliases if model is not None else {}
        moves = alias_moves_record(item.name, old_aliases, item.aliases)
        result.alias_moves += len(moves)
        result.external_alias_moves += sum(move.source == AliasMove.Source.EXTERNAL for move in moves)
        if model is None:
            model = RegisteredModel(name=item.name, **values)
            save_checked(model)
            result.models_created += 1
        elif assign(model, values):
            save_checked(model)
            result.models_updated += 1
        seen[item.name] = model
    for name, model in existing.items():
        if name not in seen and not model.deleted:
            model.deleted, model.deleted_at = True, now
            save_checked(model)
            result.models_deleted += 1
    # A version listed for a model that appeared after the models' listing still needs its parent row.
    for version in snapshot.versions:
        if version.name not in seen:
            model = existing.get(version.name) or RegisteredModel(name=version.name)
            model.deleted, model.deleted_at = False, None
            save_checked(model)
            seen[version.name] = model
    return seen


def _versions_apply(
    snapshot: _Snapshot,
    models: dict[str, RegisteredModel],
    *,
    model_name: str | None,
    now: datetime,
    result: SyncResult,
) -> None:
    scope = ModelVersion.objects.all() if model_name is None else ModelVersion.objects.filter(name=model_name)
    existing = {(row.name, row.version): row for row in scope.defer("params", "metrics")}
    aliases: dict[tuple[str, int], list[str]] = {}
    for model in snapshot.models:
        for alias, number in model.aliases.items():
            aliases.setdefault((model.name, number), []).append(alias)

    to_create: list[ModelVersion] = []
    to_update: list[ModelVersion] = []
    changed_fields: set[str] = set()
    for item in snapshot.versions:
        key = (item.name, item.version)
        values = {
            "registered_model_id": models[item.name].pk,
            "status": item.status,
            "description": item.description,
            "run_id": item.run_id,
            "model_id": item.model_id,
            "source": item.source[:1000],
            "tags": item.tags,
            "aliases": sorted(aliases.get(key, [])),
            "job_key": _uuid_or_none(item.tags.get(contract.JOB_TAG)),
            "mlflow_created_at": _from_ms(item.created_ms),
            "mlflow_updated_at": _from_ms(item.updated_ms),
            "deleted": False,
            "deleted_at": None,
            **snapshot.details.get(key, {}),
        }
        row = existing.pop(key, None)
        if row is None:
            row = ModelVersion(name=item.name, version=item.version, **values)
            _check(row)
            to_create.append(row)
            continue
        if "params" not in values:
            # Unchanged in MLflow: the deferred run data stays as stored; skip loading it just to compare.
            values = {k: v for k, v in values.items() if k not in ("params", "metrics")}
        fields = assign(row, values)
        if fields:
            row.updated_at = now
            _check(row)
            to_update.append(row)
            changed_fields.update(fields)
    for row in existing.values():
        if not row.deleted:
            row.deleted, row.deleted_at, row.updated_at = True, now, now
            to_update.append(row)
            changed_fields.update({"deleted", "deleted_at"})
            result.versions_deleted += 1
    batch = 500
    ModelVersion.objects.bulk_create(to_create, batch_size=batch)
    if to_update:
        ModelVersion.objects.bulk_update(to_update, sorted(changed_fields | {"updated_at"}), batch_size=batch)
    result.versions_created = len(to_create)
    if to_create:
        served = set(
            TrainedVersion.objects.filter(name__in={row.name for row in to_create}, version__isnull=False).values_list(
                "name", "version"
            )
        )
        external = [f"{row.name} v{row.version}" for row in to_create if (row.name, row.version) not in served]
        result.versions_external = len(external)
        if external:
            logger.warning("Versions registered directly in MLflow, not served until adopted: %s", external[:20])
        # Told once per version: the mirror creates its row once (later syncs update it).
        for row in to_create:
            _version_registered_emit(row, served=(row.name, row.version) in served)
    result.versions_updated = len(to_update) - result.versions_deleted


def _version_registered_emit(row: ModelVersion, *, served: bool) -> None:
    events.emit(
        events.VERSION_REGISTERED,
        {
            "model_name": row.name,
            "version": row.version,
            # Trained by MDS (served), or registered directly in MLflow (served once a maintainer adopts it).
            "origin": "trained" if served else "external",
            "run_id": row.run_id,
            "job_key": str(row.job_key) if row.job_key else None,
            "metrics": {column: getattr(row, column) for column in ("r2", "mae", "rmse")},
            "mlflow_created_at": row.mlflow_created_at.isoformat() if row.mlflow_created_at else None,
        },
    )


def _check(version: ModelVersion) -> None:
    # Uniqueness, constraints and the parent row are the database's to enforce: checking them here would cost a
    # query per version, and a sync writes thousands.
    version.full_clean(exclude=["registered_model"], validate_unique=False, validate_constraints=False)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _from_ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
