"""The one package that talks to MLflow: log and register trained models, read the registry, serve versions.

MLflow is imported inside functions: it costs seconds and ~180 MB, which web start-up should not pay. Every
call goes to the tracking/registry URI from settings; MLflow's process-global URI is set to the same store
because MLflow's own registry resolves ``models:/<id>`` sources through it. Connection faults surface as
``RegistryUnavailable`` (transient, worth a retry); a missing model or version as ``NotFound``.

Callers use this package's names (``gateway.model_version_register``), never the modules behind them.
"""

from .core import (
    JOB_TAG,
    ONNX_FILE,
    ONNX_SHA256_TAG,
    SKLEARN_FILE,
    SKLEARN_SHA256_TAG,
    client,
    experiment_id,
    file_sha256,
    translated_errors,
)
from .process import RegistryProcess
from .register import PIP_REQUIREMENTS, RegisteredVersion, TrainedModel, model_version_register
from .registry import (
    Page,
    RegistryModel,
    RegistryVersion,
    RunData,
    model_alias_set,
    model_version_flavors,
    model_version_resolve,
    model_versions_page,
    registered_models_page,
    run_artifact_read,
    run_data_get,
)
from .serving import PARITY_METRICS, model_version_fetch, model_version_number, serves_over_rest

__all__ = [
    "JOB_TAG",
    "ONNX_FILE",
    "ONNX_SHA256_TAG",
    "PARITY_METRICS",
    "PIP_REQUIREMENTS",
    "SKLEARN_FILE",
    "SKLEARN_SHA256_TAG",
    "Page",
    "RegisteredVersion",
    "RegistryModel",
    "RegistryProcess",
    "RegistryVersion",
    "RunData",
    "TrainedModel",
    "client",
    "experiment_id",
    "file_sha256",
    "model_alias_set",
    "model_version_fetch",
    "model_version_flavors",
    "model_version_number",
    "model_version_register",
    "model_version_resolve",
    "model_versions_page",
    "registered_models_page",
    "run_artifact_read",
    "run_data_get",
    "serves_over_rest",
    "translated_errors",
]
