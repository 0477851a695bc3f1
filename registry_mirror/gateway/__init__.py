"""The one package that talks to MLflow: log and register trained models, read the registry, serve versions.

MLflow is imported inside functions: it costs seconds and ~180 MB, which web start-up should not pay. Every
call goes to the tracking/registry URI from settings; MLflow's process-global URI is set to the same store
because MLflow's own registry resolves ``models:/<id>`` sources through it. Plain REST reads go through one pooled
HTTP session (``rest``); MLflow's failures, from the SDK or over REST, are translated in one place (``errors``):
an outage as ``MlflowUnavailable`` (transient, worth a retry), a missing model or version as ``NotFound``.

Callers use this package's names (``gateway.model_version_register``), never the modules behind them.
"""

from .access import AppUserResult, app_user_provision, viewer_user_provision
from .client import client, experiment_id, file_sha256
from .errors import translated_errors
from .register import (
    PIP_REQUIREMENTS,
    RegisteredVersion,
    TrainedModel,
    model_run_end,
    model_run_start,
    model_version_register,
)
from .registry import (
    Page,
    RegistryModel,
    RegistryVersion,
    RunData,
    model_alias_delete,
    model_alias_set,
    model_aliases,
    model_version_flavors,
    model_version_resolve,
    model_versions_page,
    registered_models_page,
    run_artifact_read,
    run_data_get,
    version_plot_read,
)
from .serving import (
    model_version_fetch,
    model_version_file_read,
    serves_over_rest,
    tracking_server_check,
)
from .ui import UiStatus, ui_link, ui_status

__all__ = [
    "AppUserResult",
    "app_user_provision",
    "viewer_user_provision",
    "PIP_REQUIREMENTS",
    "Page",
    "RegisteredVersion",
    "RegistryModel",
    "RegistryVersion",
    "RunData",
    "TrainedModel",
    "UiStatus",
    "client",
    "experiment_id",
    "file_sha256",
    "model_alias_delete",
    "model_alias_set",
    "model_aliases",
    "model_version_fetch",
    "model_version_file_read",
    "model_version_flavors",
    "model_version_register",
    "model_version_resolve",
    "model_versions_page",
    "registered_models_page",
    "run_artifact_read",
    "run_data_get",
    "version_plot_read",
    "serves_over_rest",
    "tracking_server_check",
    "model_run_end",
    "model_run_start",
    "translated_errors",
    "ui_link",
    "ui_status",
]
