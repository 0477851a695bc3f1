"""Logging a trained model as one MLflow run with one logged model (sklearn + onnx), registered as one version.

The training plots are files of the logged model (``plots/<name>.png`` beside ``MLmodel``), not of the run: MLflow's
UI shows a run's output model in the run's Artifacts tab only while the run has no artifacts of its own, so the
run's page shows both formats and the plots without storing the model twice.
"""

import contextlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.contract import FILE_SHA256_TAGS, JOB_TAG, ONNX_FILE, PROFILE_FILE, plot_path

from .client import client, experiment_id, file_sha256
from .errors import translated_errors

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
    # Metrics with one value per step (a backtest's folds: step 1, 2, ...), logged beside ``metrics``.
    metric_steps: dict[str, list[float]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # Plot name (core.contract.PLOTS) -> matplotlib Figure, saved as ``plot_path(name)`` in the model directory.
    figures: dict[str, Any] = field(default_factory=dict)
    # The training window's feature profile (training/profile.py), saved as PROFILE_FILE beside the model files.
    profile: dict[str, Any] | None = None
    # More files of the model directory, beside the two formats (file name -> content).
    files: dict[str, bytes] = field(default_factory=dict)
    # Tags of the registered version besides the job and checksum tags (a retrained version's lineage).
    version_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: int
    run_id: str
    model_id: str


def model_run_start(*, job_key: str, model_name: str, params: dict[str, Any]) -> str:
    """Open the run of one attempt at a job as its training starts, with the parameters it uses; its id.

    The run shows the training in MLflow while it runs, and ends as FINISHED with a version
    (``model_version_register(run_id=...)``), FAILED, or KILLED when the job is cancelled (``model_run_end``).
    """
    from mlflow.entities import Param

    mlflow_client = client()
    exp_id = experiment_id()
    with translated_errors():
        run = mlflow_client.create_run(exp_id, run_name=f"{model_name}-job-{job_key}", tags={JOB_TAG: job_key})
        mlflow_client.log_batch(run.info.run_id, params=[Param(key, str(value)) for key, value in params.items()])
    return run.info.run_id


def model_run_end(*, run_id: str, status: str) -> None:
    """End a run opened by ``model_run_start`` that registers nothing: ``KILLED`` or ``FAILED``."""
    with translated_errors():
        client().set_terminated(run_id, status)


def model_version_register(
    *,
    job_key: str,
    model_name: str,
    model: TrainedModel,
    before_upload: Callable[[dict[str, str]], None] | None = None,
    still_owner: Callable[[], None] | None = None,
    run_id: str | None = None,
) -> RegisteredVersion:
    """Log ``model`` as one run with one logged model carrying both flavors, and register one new version.

    Idempotent per ``job_key``: if a run tagged with it already produced a version, that version is returned
    and nothing new is logged; a run left RUNNING by a killed attempt is marked FAILED before a fresh one
    starts. Whatever fails here ends the run as FAILED, never leaves it RUNNING.

    ``before_upload`` gets the files' sha256 (``{SKLEARN_SHA256_TAG: ..., ONNX_SHA256_TAG: ...}``) once they are
    written and before anything is uploaded; if it raises, nothing is. ``still_owner`` is called right before the
    version is created and raises if the caller may no longer register one (another execution of the job took it
    over meanwhile, and registers its own).

    ``run_id`` is the attempt's run opened by ``model_run_start`` (its params already logged); without it a
    run is opened here.
    """
    mlflow_client = client()
    exp_id = experiment_id()
    with translated_errors():
        existing = _version_for_job(mlflow_client, exp_id, job_key, model_name, current_run_id=run_id)
        if existing is not None:
            if run_id is not None:
                # An earlier attempt registered the job's version: this attempt's run only duplicates its run.
                mlflow_client.set_terminated(run_id, "FINISHED")
                mlflow_client.delete_run(run_id)
            return existing
        if run_id is None:
            run = mlflow_client.create_run(exp_id, run_name=f"{model_name}-job-{job_key}", tags={JOB_TAG: job_key})
            run_id = run.info.run_id
            params = model.params
        else:
            params = {}
        try:
            registered = _log_and_register(
                mlflow_client, exp_id, run_id, model_name, job_key, model, params, before_upload, still_owner
            )
        except BaseException:
            with contextlib.suppress(Exception):
                mlflow_client.set_terminated(run_id, "FAILED")
            raise
        mlflow_client.set_terminated(run_id, "FINISHED")
        return registered


def _version_for_job(
    mlflow_client, exp_id: str, job_key: str, model_name: str, current_run_id: str | None = None
) -> RegisteredVersion | None:
    runs = mlflow_client.search_runs([exp_id], filter_string=f"tags.`{JOB_TAG}` = '{job_key}'")
    for run in runs:
        if run.info.run_id == current_run_id:
            continue
        versions = mlflow_client.search_model_versions(f"name = '{model_name}' and run_id = '{run.info.run_id}'")
        if versions:
            version = min(versions, key=lambda v: int(v.version))
            if run.info.status == "RUNNING":
                mlflow_client.set_terminated(run.info.run_id, "FINISHED")
            return RegisteredVersion(model_name, int(version.version), run.info.run_id, version.model_id or "")
        if run.info.status == "RUNNING":
            mlflow_client.set_terminated(run.info.run_id, "FAILED")
    return None


def _log_and_register(
    mlflow_client, exp_id, run_id, model_name, job_key, model: TrainedModel, params, before_upload, still_owner
) -> RegisteredVersion:
    from mlflow.entities import LoggedModelOutput, Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    mlflow_client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in model.metrics.items()]
        + [
            Metric(key, float(value), now, step)
            for key, values in model.metric_steps.items()
            for step, value in enumerate(values, start=1)
        ],
        params=[Param(key, str(value)) for key, value in params.items()],
        tags=[RunTag(key, str(value)) for key, value in model.tags.items()],
    )
    with tempfile.TemporaryDirectory(prefix="mds-model-") as tmp:
        model_dir = Path(tmp) / "model"
        checksums = _save_model_dir(model, model_dir)
        if before_upload is not None:
            before_upload(checksums)
        logged = mlflow_client.create_logged_model(
            exp_id, name="model", source_run_id=run_id, tags={JOB_TAG: job_key, **checksums}
        )
        try:
            mlflow_client.log_model_artifacts(logged.model_id, str(model_dir))
        except BaseException:
            mlflow_client.finalize_logged_model(logged.model_id, "FAILED")
            raise
    mlflow_client.finalize_logged_model(logged.model_id, "READY")
    # The model is the run's output, as `mlflow.<flavor>.log_model` records it: the run's page lists it (with its
    # sklearn and onnx flavors) and, the run having no artifacts of its own, shows its files in the Artifacts tab;
    # the model's page links back to the run.
    mlflow_client.log_outputs(run_id, models=[LoggedModelOutput(logged.model_id, step=0)])
    _ensure_registered_model(mlflow_client, model_name)
    if still_owner is not None:
        still_owner()
    version = mlflow_client.create_model_version(
        model_name,
        source=f"models:/{logged.model_id}",
        run_id=run_id,
        model_id=logged.model_id,
        tags={**model.version_tags, JOB_TAG: job_key, **checksums},
    )
    return RegisteredVersion(model_name, int(version.version), run_id, logged.model_id)


def _save_model_dir(model: TrainedModel, model_dir: Path) -> dict[str, str]:
    """Write one MLmodel directory with the sklearn and the onnx flavor (and the plots); return the files' sha256
    tags."""
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
    if model.profile is not None:
        (model_dir / PROFILE_FILE).write_text(json.dumps(model.profile))
    for name, content in model.files.items():
        (model_dir / name).write_bytes(content)
    for name, figure in model.figures.items():
        (model_dir / plot_path(name)).parent.mkdir(exist_ok=True)
        figure.savefig(model_dir / plot_path(name))
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
        tag: file_sha256(model_dir / name) for name, tag in FILE_SHA256_TAGS.items() if (model_dir / name).exists()
    }


def _ensure_registered_model(mlflow_client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name, description="Registered by the Model Distribution Server.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
