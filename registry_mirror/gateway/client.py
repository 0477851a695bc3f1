"""The MLflow SDK client the gateway logs, registers and reads the registry with; its errors go through
``errors.translated_errors``."""

import hashlib
import os
from pathlib import Path

from django.conf import settings

from .errors import translated_errors


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


# The MLflow UI (3.x) opens an experiment in its GenAI view (traces, evaluation runs) unless this tag says it holds
# classic model development: runs, metrics, models.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_id() -> str:
    """Id of the experiment that holds every training run, created on first use, tagged for the MLflow UI's model
    development view (an experiment made before the tag existed gets it now)."""
    mlflow_client = client()
    name = settings.MLFLOW_EXPERIMENT_NAME
    with translated_errors():
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return experiment.experiment_id
        # A local store needs an explicit artifact root; an MLflow server picks its own.
        is_local = settings.MLFLOW_TRACKING_URI.startswith(("sqlite:", "file:", "/", "postgresql", "mysql"))
        location = settings.MLFLOW_ARTIFACT_ROOT if is_local else None
        try:
            return mlflow_client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except Exception:
            # Another process created it between our read and our write.
            experiment = mlflow_client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
