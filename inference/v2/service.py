"""What the Open Inference Protocol's REST and gRPC front ends share: metadata, readiness and inference, on the
services ``/predict`` runs (``inference.services``): the same version resolution through MDS's promotion record,
the same model cache, the same engine choice, the same prediction log.
"""

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from core.contract import VersionRef
from core.errors import ApplicationError
from core.tabular import TableError

from ..model_cache import LoadedVersion
from ..prediction_log import prediction_log_answer
from ..services import FORMATS, Prediction, loaded_version, prediction_from_features
from ..trials.routing import shadow_submit, trial_routed
from .tensors import LOWER, OUTPUT_DATATYPE, PREDICTIONS, UPPER, InputTensor, OutputTensor, feature_matrix
from .tensors import output_tensors as make_outputs
from .timestamps import calendar_feature_matrix, metadata_inputs

SERVER_NAME = "mds"
SERVER_VERSION = "1"
# The protocol's optional extensions MDS speaks (the REST binary tensor data extension, as Triton names it).
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "mds_forest"
# The parameters of a request MDS reads; others (tritonclient's ``binary_data_output``, ``priority``, ...) are
# left to the front end or ignored.
INTERVAL, FORMAT = "interval", "format"


def server_metadata() -> dict:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}


def version_reference(version: str | None) -> VersionRef:
    """A protocol version string as MDS reads it: empty for the serving alias (``@champion``, as ``/predict``),
    else a number, ``latest`` or an alias (with or without its ``@``)."""
    if not version:
        return VersionRef(alias=settings.MDS_SERVING_ALIAS.removeprefix("@"))
    return VersionRef.parse(version)


def model_loaded(name: str, version: str | None) -> LoadedVersion:
    """The version, loaded: a model's readiness is that it answers (the first call loads it, as a warm-up)."""
    return loaded_version(model_name=name, version=version_reference(version))


def model_metadata(name: str, version: str | None) -> dict:
    """The inputs the version's signature names (one ``[-1]`` tensor per feature, in its order; for a calendar version
    its own features and the timestamp tensor instead of the derived ones) and the outputs."""
    loaded = model_loaded(name, version)
    return {
        "name": name,
        "versions": [str(loaded.version)],
        "platform": PLATFORM,
        "inputs": metadata_inputs(loaded.feature_names, loaded.calendar_from),
        "outputs": [{"name": output, "datatype": OUTPUT_DATATYPE, "shape": [-1]} for output in (PREDICTIONS,)],
    }


@dataclass
class InferAnswer:
    prediction: Prediction
    request_id: uuid.UUID
    outputs: list[OutputTensor]
    parameters: dict[str, Any] = field(default_factory=dict)


def infer(
    *,
    name: str,
    version: str | None,
    inputs: list[InputTensor],
    parameters: dict[str, Any],
    requested: list[str] | None,
    request_id: uuid.UUID,
    caller_id: int | None,
    client_request_id: str,
    routing_key: str,
) -> InferAnswer:
    """Predict the rows the ``inputs`` give with ``name`` at ``version``, log the answer and shape its outputs.

    ``parameters`` may hold ``interval`` (a level in (0, 1): adds the ``lower`` and ``upper`` outputs) and
    ``format`` (``onnx``, ``sklearn`` or ``auto``, the default: the engine, as ``/predict``'s). ``requested`` names
    the outputs to answer (all when ``None``). ``routing_key`` keeps a caller on one side of a canary trial
    (``inference.trials.routing``); a routed answer's parameters name the trial.

    A ``calendar=true`` version takes its timestamp tensor instead of the calendar features (``timestamps``).

    Raises:
        TableError: the inputs do not give the version's features (naming the tensor or the feature).
        NotFound, Conflict, TooLarge, UntrustedArtifact, ApplicationError: as ``prediction_create``.
    """
    interval = _interval(parameters.get(INTERVAL))
    model_format = parameters.get(FORMAT) or "auto"
    if model_format not in FORMATS:
        raise ApplicationError(
            f"Parameter {FORMAT!r} must be one of {', '.join(FORMATS)}.", code="invalid_input", extra={FORMAT: 1}
        )
    available = [PREDICTIONS, LOWER, UPPER] if interval is not None else [PREDICTIONS]
    for output in requested or ():
        if output not in available:
            hint = " (lower and upper need the parameter interval)" if output in (LOWER, UPPER) else ""
            raise TableError(
                f"There is no output {output!r}{hint}; this request answers {', '.join(available)}.",
                code="invalid_output",
                extra={"output": output, "outputs": available},
            )

    def predict(reference: VersionRef) -> Prediction:
        loaded = loaded_version(model_name=name, version=reference)
        max_rows = settings.MDS_PREDICT_MAX_ROWS
        if loaded.calendar_from is not None:
            X = calendar_feature_matrix(
                inputs, loaded.feature_names, calendar_from=loaded.calendar_from, max_rows=max_rows
            )
        else:
            X = feature_matrix(inputs, loaded.feature_names, max_rows=max_rows)
        return prediction_from_features(loaded=loaded, X=X, model_format=model_format, interval=interval)

    # As /predict: a running trial may route a request for the serving alias, and score its rows in the shadow.
    routed = trial_routed(
        model_name=name, reference=version_reference(version), routing_key=routing_key, predict=predict
    )
    prediction = routed.prediction
    prediction_log_answer(
        prediction,
        request_id=request_id,
        caller_id=caller_id,
        client_request_id=client_request_id,
        trial=routed.log_fields(request_id),
    )
    shadow_submit(
        routed, interval=interval, request_id=request_id, caller_id=caller_id, client_request_id=client_request_id
    )
    intervals = prediction.intervals
    outputs = make_outputs(
        prediction.values,
        intervals.lower if intervals is not None else None,
        intervals.upper if intervals is not None else None,
    )
    if requested:
        outputs = [output for output in outputs if output.name in requested]
    answer_parameters: dict[str, Any] = {"engine": prediction.model_format}
    if client_request_id:
        answer_parameters["client_request_id"] = client_request_id
    if intervals is not None:
        answer_parameters["interval_method"] = intervals.method
    if routed.routing is not None:
        answer_parameters["trial"] = routed.routing.trial.trial_id
    return InferAnswer(prediction=prediction, request_id=request_id, outputs=outputs, parameters=answer_parameters)


def asked_format(parameters: dict[str, Any]) -> str:
    """The engine a request asks for, as a metrics label: one of ``FORMATS`` (a made-up one counts as ``auto``, so
    clients cannot grow the label's values)."""
    asked = parameters.get(FORMAT) or "auto"
    return asked if asked in FORMATS else "auto"


def _interval(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        level = math.nan
    else:
        try:
            level = float(value)
        except ValueError:
            level = math.nan
    if not (math.isfinite(level) and 0 < level < 1):
        raise ApplicationError(
            f"Parameter {INTERVAL!r} must be a level strictly between 0 and 1, such as 0.9.",
            code="invalid_input",
            extra={INTERVAL: str(value)[:100]},
        )
    return level
