"""The one module that talks to MLflow: log a trained model, register it, resolve and download versions.

MLflow is imported inside functions: it costs seconds and ~180 MB, which web start-up should not pay. Every
call goes to the tracking/registry URI from settings; MLflow's process-global URI is set to the same store
because MLflow's own registry resolves ``models:/<id>`` sources through it. Connection faults surface as
``RegistryUnavailable`` (transient, worth a retry); a missing model or version as ``NotFound``.
"""

import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from .errors import ApplicationError, NotFound, RegistryUnavailable

JOB_TAG = "mds.job_id"
SKLEARN_SHA256_TAG = "mds.sklearn_sha256"
ONNX_SHA256_TAG = "mds.onnx_sha256"
ONNX_FILE = "model.onnx"
SKLEARN_FILE = "model.pkl"
# Written into the MLmodel so `mlflow models serve` and pyfunc users get a working environment.
PIP_REQUIREMENTS = ["scikit-learn==1.9.1", "onnx==1.23.2", "onnxruntime==1.32.0", "cloudpickle", "numpy", "pandas"]


@dataclass
class TrainedModel:
    """What a finished training hands to the registry."""

    estimator: Any
    onnx_model: Any
    input_example: Any  # a few rows of features (pandas DataFrame, float64)
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)  # artifact file name -> matplotlib Figure


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: int
    run_id: str
    model_id: str
    formats: tuple[str, ...] = ("sklearn", "onnx")


@dataclass(frozen=True)
class DownloadedVersion:
    """A registered version's files on local disk; the caller deletes ``path`` when done."""

    name: str
    version: int
    path: Path
    feature_names: list[str]
    tags: dict[str, str]
    aliases: list[str]


def client():
    _quiet_mlflow()
    import mlflow
    from mlflow import MlflowClient

    uri = settings.MLFLOW_TRACKING_URI
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    if uri.startswith("sqlite:///"):
        # The embedded store: SQLite creates the file, not the directory.
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # MLflow's REST client reads its retry budget from the environment on every request.
    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    ):
        os.environ.setdefault(name, str(getattr(settings, name)))


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Map MLflow's and the network's exceptions onto our domain errors."""
    import requests
    from mlflow.exceptions import MlflowException, RestException

    try:
        yield
    except RestException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(exc.message, extra={"mlflow_error": exc.error_code}) from exc
        if exc.get_http_status_code() >= 500:
            raise RegistryUnavailable(f"MLflow failed: {exc.message}") from exc
        raise
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(exc.message, extra={"mlflow_error": exc.error_code}) from exc
        if "Max retries exceeded" in exc.message or "Connection" in exc.message:
            raise RegistryUnavailable(f"MLflow is unreachable: {exc.message}") from exc
        raise
    except requests.exceptions.RequestException as exc:
        raise RegistryUnavailable(f"MLflow is unreachable: {exc}") from exc


def experiment_id() -> str:
    """Id of the experiment that holds every training run, created on first use."""
    mlflow_client = client()
    name = settings.MLFLOW_EXPERIMENT_NAME
    with translated_errors():
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        # A local store needs an explicit artifact root; an MLflow server picks its own.
        is_local = settings.MLFLOW_TRACKING_URI.startswith(("sqlite:", "file:", "/", "postgresql", "mysql"))
        location = settings.MLFLOW_ARTIFACT_ROOT if is_local else None
        try:
            return mlflow_client.create_experiment(name, artifact_location=location)
        except Exception:
            # Another process created it between our read and our write.
            experiment = mlflow_client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id


def model_version_register(*, job_key: str, model_name: str, model: TrainedModel) -> RegisteredVersion:
    """Log ``model`` as one run with one logged model carrying both flavors, and register one new version.

    Idempotent per ``job_key``: if a run tagged with it already produced a version, that version is returned
    and nothing new is logged; a run left RUNNING by a killed attempt is marked FAILED before a fresh one
    starts. Whatever fails here ends the run as FAILED, never leaves it RUNNING.
    """
    mlflow_client = client()
    exp_id = experiment_id()
    with translated_errors():
        existing = _version_for_job(mlflow_client, exp_id, job_key, model_name)
        if existing is not None:
            return existing
        run = mlflow_client.create_run(exp_id, run_name=f"{model_name}-job-{job_key}", tags={JOB_TAG: job_key})
        run_id = run.info.run_id
        try:
            registered = _log_and_register(mlflow_client, exp_id, run_id, model_name, job_key, model)
        except BaseException:
            with contextlib.suppress(Exception):
                mlflow_client.set_terminated(run_id, "FAILED")
            raise
        mlflow_client.set_terminated(run_id, "FINISHED")
        return registered


def _version_for_job(mlflow_client, exp_id: str, job_key: str, model_name: str) -> RegisteredVersion | None:
    runs = mlflow_client.search_runs([exp_id], filter_string=f"tags.`{JOB_TAG}` = '{job_key}'")
    for run in runs:
        versions = mlflow_client.search_model_versions(f"name = '{model_name}' and run_id = '{run.info.run_id}'")
        if versions:
            version = min(versions, key=lambda v: int(v.version))
            if run.info.status == "RUNNING":
                mlflow_client.set_terminated(run.info.run_id, "FINISHED")
            return RegisteredVersion(model_name, int(version.version), run.info.run_id, version.model_id or "")
        if run.info.status == "RUNNING":
            mlflow_client.set_terminated(run.info.run_id, "FAILED")
    return None


def _log_and_register(mlflow_client, exp_id, run_id, model_name, job_key, model: TrainedModel) -> RegisteredVersion:
    from mlflow.entities import LoggedModelInput, Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    mlflow_client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in model.metrics.items()],
        params=[Param(key, str(value)) for key, value in model.params.items()],
        tags=[RunTag(key, str(value)) for key, value in model.tags.items()],
    )
    for file_name, figure in model.figures.items():
        mlflow_client.log_figure(run_id, figure, f"plots/{file_name}")
    with tempfile.TemporaryDirectory(prefix="mds-model-") as tmp:
        model_dir = Path(tmp) / "model"
        checksums = _save_model_dir(model, model_dir)
        logged = mlflow_client.create_logged_model(
            exp_id, name="model", source_run_id=run_id, tags={JOB_TAG: job_key, **checksums}
        )
        try:
            mlflow_client.log_model_artifacts(logged.model_id, str(model_dir))
        except BaseException:
            mlflow_client.finalize_logged_model(logged.model_id, "FAILED")
            raise
    mlflow_client.finalize_logged_model(logged.model_id, "READY")
    mlflow_client.log_inputs(run_id, models=[LoggedModelInput(logged.model_id)])
    _ensure_registered_model(mlflow_client, model_name)
    version = mlflow_client.create_model_version(
        model_name,
        source=f"models:/{logged.model_id}",
        run_id=run_id,
        model_id=logged.model_id,
        tags={JOB_TAG: job_key, **checksums},
    )
    return RegisteredVersion(model_name, int(version.version), run_id, logged.model_id)


def _save_model_dir(model: TrainedModel, model_dir: Path) -> dict[str, str]:
    """Write one MLmodel directory with the sklearn and the onnx flavor; return the files' sha256 tags."""
    import mlflow.sklearn
    import onnx
    from mlflow.models import Model, infer_signature

    signature = infer_signature(model.input_example, model.estimator.predict(model.input_example.to_numpy()))
    mlflow.sklearn.save_model(
        model.estimator,
        str(model_dir),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        signature=signature,
        input_example=model.input_example,
        pip_requirements=PIP_REQUIREMENTS,
    )
    (model_dir / ONNX_FILE).write_bytes(model.onnx_model.SerializeToString())
    mlmodel = Model.load(str(model_dir / "MLmodel"))
    mlmodel.add_flavor(
        "onnx",
        onnx_version=onnx.__version__,
        data=ONNX_FILE,
        providers=["CPUExecutionProvider"],
        code=None,
    )
    mlmodel.save(str(model_dir / "MLmodel"))
    return {
        SKLEARN_SHA256_TAG: file_sha256(model_dir / SKLEARN_FILE),
        ONNX_SHA256_TAG: file_sha256(model_dir / ONNX_FILE),
    }


def _ensure_registered_model(mlflow_client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name, description="Registered by the Model Distribution Server.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_version_resolve(*, name: str, version: str):
    """The MLflow ``ModelVersion`` for ``version``: a number, ``latest``, or an alias (``@champion``)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    with translated_errors():
        if version.isdigit():
            return mlflow_client.get_model_version(name, version)
        if version == "latest":
            versions = mlflow_client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"])
            if not versions:
                raise NotFound(f"Model {name!r} has no versions.", extra={"model_name": name})
            return max(versions, key=lambda v: int(v.version))
        alias = version.removeprefix("@")
        try:
            return mlflow_client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            # MLflow reports an unknown alias as a bad parameter; for our callers it is a missing version.
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise NotFound(
                f"Model {name!r} has no alias {alias!r}.", extra={"model_name": name, "alias": alias}
            ) from exc


def model_version_download(*, name: str, version: int) -> DownloadedVersion:
    """Download a version's model directory (both formats) to a new temporary directory."""
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    mlflow_client = client()
    with translated_errors():
        model_version = mlflow_client.get_model_version(name, str(version))
        target = Path(tempfile.mkdtemp(prefix=f"mds-{name}-{version}-"))
        try:
            source = mlflow_client.get_model_version_download_uri(name, str(version))
            path = download_artifacts(
                artifact_uri=source, dst_path=str(target), tracking_uri=settings.MLFLOW_TRACKING_URI
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    signature = Model.load(str(Path(path) / "MLmodel")).signature
    return DownloadedVersion(
        name=name,
        version=int(version),
        path=Path(path),
        feature_names=list(signature.inputs.input_names()) if signature else [],
        tags=dict(model_version.tags),
        aliases=list(model_version.aliases),
    )


# --- Registry mirror: paged reads of the whole registry, run data, aliases, plots -----------------------------


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
        except RegistryUnavailable:
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
            # locally); an unreachable store was already turned into RegistryUnavailable above.
            raise NotFound(f"Run {run_id} has no artifact {path!r}.", extra={"run_id": run_id, "path": path}) from exc
        return Path(local).read_bytes()


# --- Serving: what the inference cache needs, optionally from a child process ---------------------------------

# Run metrics that say how far the ONNX predictions stray from sklearn's (training/ml.py parity_metrics).
PARITY_METRICS = ("onnx_max_abs_diff", "onnx_max_rel_diff")


def model_version_number(*, name: str, version: str) -> int:
    """The number ``version`` (a number, ``latest`` or an alias) stands for right now; ``NotFound`` if none."""
    if serves_over_rest():
        return int(_rest_model_version(name, version)["version"])
    return int(model_version_resolve(name=name, version=version).version)


def model_version_fetch(*, name: str, version: int, files: list[str], dst: str) -> dict[str, Any]:
    """Download only ``files`` of a version's model directory into ``dst``, with what serving needs to know.

    Returns a JSON-able dict: ``feature_names`` (the signature's inputs), ``tags`` (checksums recorded at
    training), ``metrics`` (the run's ONNX parity) and ``paths`` (file name -> local path).
    """
    if serves_over_rest():
        return _rest_model_version_fetch(name, version, files, Path(dst))
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    mlflow_client = client()
    with translated_errors():
        model_version = mlflow_client.get_model_version(name, str(version))
        source = mlflow_client.get_model_version_download_uri(name, str(version)).rstrip("/")
        paths = {
            file: download_artifacts(
                artifact_uri=f"{source}/{file}", dst_path=dst, tracking_uri=settings.MLFLOW_TRACKING_URI
            )
            for file in ["MLmodel", *files]
        }
        metrics = mlflow_client.get_run(model_version.run_id).data.metrics if model_version.run_id else {}
    signature = Model.load(paths.pop("MLmodel")).signature
    return {
        "feature_names": list(signature.inputs.input_names()) if signature else [],
        "tags": dict(model_version.tags),
        "metrics": {key: float(metrics[key]) for key in PARITY_METRICS if key in metrics},
        "paths": paths,
    }


def serves_over_rest() -> bool:
    """Whether the serving calls can use MLflow's REST API directly (an MLflow server) instead of the client."""
    return settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://"))


# MLflow's documented REST API (https://mlflow.org/docs/latest/api_reference/rest-api.html) with `requests`:
# a serving process reads a version in milliseconds instead of importing MLflow (~1.5 s, ~180 MB) first.


def _rest(path: str, **params: Any) -> dict[str, Any]:
    import requests

    url = f"{settings.MLFLOW_TRACKING_URI.rstrip('/')}/api/2.0/{path}"
    try:
        response = requests.get(url, params=params, timeout=settings.MLFLOW_HTTP_REQUEST_TIMEOUT, **_rest_auth())
    except requests.RequestException as exc:
        raise RegistryUnavailable(f"MLflow is unreachable: {exc}") from exc
    if response.ok:
        return response.json()
    try:
        error = response.json()
    except ValueError:
        error = {"message": response.text[:200]}
    code, message = error.get("error_code", ""), error.get("message", response.reason)
    if response.status_code >= 500:
        raise RegistryUnavailable(f"MLflow failed: {message}")
    if code == "RESOURCE_DOES_NOT_EXIST" or response.status_code == 404:
        raise NotFound(message, extra={"mlflow_error": code})
    raise ApplicationError(message, code="registry_error", extra={"mlflow_error": code})


def _rest_auth() -> dict[str, Any]:
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"headers": {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}}
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return {"auth": (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))}
    return {}


def _rest_model_version(name: str, version: str) -> dict[str, Any]:
    if version.isdigit():
        return _rest("mlflow/model-versions/get", name=name, version=version)["model_version"]
    if version == "latest":
        found = _rest(
            "mlflow/model-versions/search",
            filter="name = '{}'".format(name.replace("'", "\\'")),
            order_by="version_number DESC",
            max_results=1,
        ).get("model_versions", [])
        if not found:
            raise NotFound(f"Model {name!r} has no versions.", extra={"model_name": name})
        return found[0]
    alias = version.removeprefix("@")
    try:
        return _rest("mlflow/registered-models/alias", name=name, alias=alias)["model_version"]
    except ApplicationError as exc:
        # MLflow reports an unknown alias as a bad parameter; for our callers it is a missing version.
        if exc.extra.get("mlflow_error") not in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            raise
        raise NotFound(f"Model {name!r} has no alias {alias!r}.", extra={"model_name": name, "alias": alias}) from exc


def _rest_model_version_fetch(name: str, version: int, files: list[str], dst: Path) -> dict[str, Any]:
    import yaml

    model_version = _rest_model_version(name, str(version))
    source = _rest("mlflow/model-versions/get-download-uri", name=name, version=str(version))["artifact_uri"]
    dst.mkdir(parents=True, exist_ok=True)
    paths = {file: str(_rest_download(source.rstrip("/"), file, dst)) for file in ["MLmodel", *files]}
    run_id = model_version.get("run_id")
    metrics = _rest("mlflow/runs/get", run_id=run_id)["run"]["data"].get("metrics", []) if run_id else []
    mlmodel = yaml.safe_load(Path(paths.pop("MLmodel")).read_text())
    inputs = json.loads((mlmodel.get("signature") or {}).get("inputs") or "[]")
    return {
        "feature_names": [column["name"] for column in inputs if "name" in column],
        "tags": {tag["key"]: tag["value"] for tag in model_version.get("tags", [])},
        "metrics": {m["key"]: float(m["value"]) for m in metrics if m["key"] in PARITY_METRICS},
        "paths": paths,
    }


def _rest_download(source: str, file: str, dst: Path) -> Path:
    """One artifact file, through the server's artifact proxy (``mlflow-artifacts:``) or from a local store."""
    import requests

    target = dst / file
    if source.startswith(("file://", "/")):
        shutil.copyfile(source.removeprefix("file://") + "/" + file, target)
        return target
    if not source.startswith("mlflow-artifacts:"):
        raise ApplicationError(
            f"Artifacts at {source.split(':')[0]}: are not served by the MLflow server; use its artifact proxy.",
            code="registry_error",
        )
    path = re.sub(r"^mlflow-artifacts:(//[^/]*)?/*", "", source)
    url = f"{settings.MLFLOW_TRACKING_URI.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{path}/{file}"
    try:
        with requests.get(url, stream=True, timeout=settings.MLFLOW_HTTP_REQUEST_TIMEOUT, **_rest_auth()) as answer:
            if answer.status_code == 404:
                raise NotFound(f"Artifact {file!r} of {source} does not exist.")
            if not answer.ok:
                raise RegistryUnavailable(f"MLflow failed to serve {file!r}: HTTP {answer.status_code}")
            with open(target, "wb") as handle:
                for chunk in answer.iter_content(1 << 20):
                    handle.write(chunk)
    except requests.RequestException as exc:
        raise RegistryUnavailable(f"MLflow is unreachable: {exc}") from exc
    return target


class RegistryProcess:
    """Runs the serving calls above in a child process, so a serving process never imports MLflow.

    Importing MLflow costs ~180 MB of RSS and ~1.5 s in every process that does it; an inference worker needs
    MLflow only to resolve and download a version now and then. The child starts on first use (or ahead of
    time with ``start()``), answers one JSON line per call, and exits after ``idle_timeout`` idle seconds or
    when its parent goes away. Thread-safe: calls are serialized.
    """

    FUNCTIONS = ("model_version_number", "model_version_fetch")

    def __init__(self, *, idle_timeout: float, call_timeout: float = 600.0):
        self.idle_timeout = idle_timeout
        self.call_timeout = call_timeout
        self._process = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._ensure_started()

    def call(self, function: str, **kwargs: Any) -> Any:
        """Run ``function(**kwargs)`` of this module in the child against the configured tracking URI."""
        request = {"function": function, "kwargs": kwargs, "tracking_uri": settings.MLFLOW_TRACKING_URI}
        with self._lock:
            process = self._ensure_started()
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                ready, _, _ = select.select([process.stdout], [], [], self.call_timeout)
                line = process.stdout.readline() if ready else ""
            except (OSError, ValueError):
                line = ""
            if not line:
                self._stop(process)
                raise RegistryUnavailable("The registry client process did not answer.")
        answer = json.loads(line)
        if "error" in answer:
            error = answer["error"]
            cls = {"NotFound": NotFound, "RegistryUnavailable": RegistryUnavailable}.get(error["class"])
            raise (cls or ApplicationError)(error["message"], code=error["code"], extra=error["extra"])
        return answer["result"]

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._stop(self._process)

    def _ensure_started(self):
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "registry_mirror.gateway", str(self.idle_timeout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
        return self._process

    def _stop(self, process) -> None:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(Exception):
            process.wait(timeout=5)
        self._process = None


def _serve_calls(idle_timeout: float) -> None:
    """The child side of ``RegistryProcess``: one JSON request per stdin line, one JSON answer per stdout line."""
    from registry_mirror import gateway  # the importable module, not ``__main__``

    _quiet_mlflow()
    with contextlib.suppress(Exception):
        # Import MLflow and open the store now, so the first real call does not wait for it.
        client().search_registered_models(max_results=1)
    while select.select([sys.stdin], [], [], idle_timeout)[0]:
        line = sys.stdin.readline()
        if not line:
            return
        request = json.loads(line)
        try:
            if request["function"] not in RegistryProcess.FUNCTIONS:
                raise ApplicationError(f"Unknown function {request['function']!r}.")
            settings.MLFLOW_TRACKING_URI = request["tracking_uri"]
            answer = {"result": getattr(gateway, request["function"])(**request["kwargs"])}
        except ApplicationError as exc:
            error = {"class": type(exc).__name__, "message": exc.message, "code": exc.code, "extra": exc.extra}
            answer = {"error": error}
        except Exception as exc:  # noqa: BLE001 - any failure is the registry's, reported to the caller
            error = {"class": "RegistryUnavailable", "message": f"MLflow failed: {exc}", "code": "unavailable"}
            answer = {"error": {**error, "extra": {}}}
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mds_project.settings.base")
    _serve_calls(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
