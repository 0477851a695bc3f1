"""Reads and writes of the model registry: resolving versions, paging through it for the mirror, aliases, runs."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from core.contract import VersionRef
from core.errors import ApplicationError, MlflowUnavailable, NotFound

from .client import _quiet_mlflow, client
from .errors import translated_errors


def model_version_resolve(*, name: str, version: VersionRef):
    """The MLflow ``ModelVersion`` that ``version`` (a number, ``latest`` or an alias) stands for in MLflow now."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    with translated_errors():
        if version.number is not None:
            return mlflow_client.get_model_version(name, str(version.number))
        if version.is_latest:
            versions = mlflow_client.search_model_versions(_name_filter(name), order_by=["version_number DESC"])
            if not versions:
                raise NotFound(f"Model {name!r} has no versions.", extra={"model_name": name})
            return max(versions, key=lambda v: int(v.version))
        alias = version.alias
        try:
            return mlflow_client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            # MLflow reports an unknown alias as a bad parameter; for our callers it is a missing version.
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise NotFound(
                f"Model {name!r} has no alias {alias!r}.", extra={"model_name": name, "alias": alias}
            ) from exc


@dataclass(frozen=True)
class RegistryModel:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    created_ms: int | None
    updated_ms: int | None


@dataclass(frozen=True)
class RegistryVersion:
    name: str
    version: int
    status: str
    description: str
    run_id: str
    model_id: str
    source: str
    tags: dict[str, str]
    created_ms: int | None
    updated_ms: int | None


@dataclass(frozen=True)
class RunData:
    experiment_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class Page:
    items: list
    next_page_token: str | None


def _name_filter(name: str | None) -> str | None:
    return None if name is None else "name = '{}'".format(name.replace("'", "\\'"))


def registered_models_page(*, page_size: int, page_token: str | None = None, name: str | None = None) -> Page:
    """One page of registered models (all of them, or the one called ``name``), in MLflow's order."""
    mlflow_client = client()
    with translated_errors():
        page = mlflow_client.search_registered_models(
            filter_string=_name_filter(name), max_results=page_size, page_token=page_token
        )
    items = [
        RegistryModel(
            name=model.name,
            description=model.description or "",
            tags=dict(model.tags or {}),
            aliases={alias: int(version) for alias, version in (model.aliases or {}).items()},
            created_ms=model.creation_timestamp,
            updated_ms=model.last_updated_timestamp,
        )
        for model in page
    ]
    return Page(items, page.token or None)


def model_versions_page(*, page_size: int, page_token: str | None = None, name: str | None = None) -> Page:
    """One page of model versions (of every model, or of ``name``), ordered by name then version."""
    mlflow_client = client()
    with translated_errors():
        page = mlflow_client.search_model_versions(
            filter_string=_name_filter(name),
            max_results=page_size,
            order_by=["name ASC", "version_number ASC"],
            page_token=page_token,
        )
    items = [
        RegistryVersion(
            name=version.name,
            version=int(version.version),
            status=version.status or "READY",
            description=version.description or "",
            run_id=version.run_id or "",
            model_id=getattr(version, "model_id", None) or _logged_model_id(version.source or ""),
            source=version.source or "",
            tags=dict(version.tags or {}),
            created_ms=version.creation_timestamp,
            updated_ms=version.last_updated_timestamp,
        )
        for version in page
    ]
    return Page(items, page.token or None)


def _logged_model_id(source: str) -> str:
    # MLflow's SQL registry does not return a version's model id, but a `models:/m-<id>` source names it.
    model_id = source.removeprefix("models:/")
    return model_id if source.startswith("models:/m-") and "/" not in model_id else ""


def run_data_get(*, run_id: str) -> RunData:
    """A run's latest metrics, params and tags; ``NotFound`` if the run is gone."""
    mlflow_client = client()
    with translated_errors():
        run = mlflow_client.get_run(run_id)
    return RunData(
        experiment_id=run.info.experiment_id,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags={key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")},
    )


def model_version_flavors(*, source: str) -> list[str]:
    """The flavors in a version's MLmodel file (``sklearn``, ``onnx``...); empty if it has none to read."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    _quiet_mlflow()
    with tempfile.TemporaryDirectory(prefix="mds-mlmodel-") as tmp:
        try:
            with translated_errors():
                path = download_artifacts(
                    artifact_uri=f"{source.rstrip('/')}/MLmodel",
                    dst_path=tmp,
                    tracking_uri=settings.MLFLOW_TRACKING_URI,
                )
            flavors = Model.load(path).flavors
        except MlflowUnavailable:
            raise
        except (NotFound, MlflowException, OSError):
            return []
    return sorted(flavor for flavor in flavors if flavor != "python_function")


def model_alias_set(*, name: str, alias: str, version: int) -> None:
    """Point ``alias`` of model ``name`` at ``version`` in MLflow (moving it if it pointed elsewhere)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    with translated_errors():
        mlflow_client.get_model_version(name, str(version))
        try:
            mlflow_client.set_registered_model_alias(name, alias, str(version))
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":
                raise ApplicationError(exc.message, code="invalid_alias", extra={"alias": alias}) from exc
            raise


def model_aliases(*, name: str) -> dict[str, int]:
    """The aliases of model ``name`` (alias -> version number) as MLflow has them now; ``NotFound`` if no model."""
    page = registered_models_page(page_size=1, name=name)
    if not page.items:
        raise NotFound(f"There is no registered model {name!r}.", extra={"model_name": name})
    return dict(page.items[0].aliases)


def model_alias_delete(*, name: str, alias: str) -> None:
    """Remove ``alias`` from model ``name`` in MLflow."""
    mlflow_client = client()
    with translated_errors():
        mlflow_client.delete_registered_model_alias(name, alias)


def version_plot_read(*, model_id: str, run_id: str, path: str) -> bytes:
    """The bytes of a version's training plot: a file of its logged model, or of its run for versions logged
    before the plots moved to the model (and for runs of other clients); ``NotFound`` if neither has it."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    if model_id:
        with tempfile.TemporaryDirectory(prefix="mds-artifact-") as tmp:
            try:
                with translated_errors():
                    location = client().get_logged_model(model_id).artifact_location.rstrip("/")
                    local = download_artifacts(
                        artifact_uri=f"{location}/{path}",
                        dst_path=tmp,
                        tracking_uri=settings.MLFLOW_TRACKING_URI,
                    )
                return Path(local).read_bytes()
            except (MlflowException, NotFound, OSError):
                # Not (or no longer) there: an older version's plots are its run's.
                pass
    if not run_id:
        raise NotFound(f"There is no plot {path!r}.", extra={"model_id": model_id, "path": path})
    return run_artifact_read(run_id=run_id, path=path)


def run_artifact_read(*, run_id: str, path: str) -> bytes:
    """The bytes of one (small) run artifact, such as a training plot; ``NotFound`` if it does not exist."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    with tempfile.TemporaryDirectory(prefix="mds-artifact-") as tmp:
        try:
            with translated_errors():
                local = mlflow_client.download_artifacts(run_id, path, dst_path=tmp)
        except MlflowException as exc:
            # Each artifact store words a missing file its own way (an HTTP 404 from a server, "no such file"
            # locally); an unreachable store was already turned into MlflowUnavailable above.
            raise NotFound(f"Run {run_id} has no artifact {path!r}.", extra={"run_id": run_id, "path": path}) from exc
        return Path(local).read_bytes()
