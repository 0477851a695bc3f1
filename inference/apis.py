"""``/predict``: predictions for rows of CSV or MLflow scoring JSON from a registered model version.

Every answer carries a request id of the server's own (``X-Request-Id``, and ``request_id`` in a JSON body): the
key its caller sends actuals back with (``POST /feedback``). An incoming ``X-Request-Id`` (a proxy's or tracing
gateway's, or the client's) is never that key, since a client could then choose, or guess, another's: it is kept
beside it (at most ``CLIENT_REQUEST_ID_MAX`` printable characters), logged with the prediction and echoed as
``X-Client-Request-Id`` (``client_request_id`` in JSON).
"""

import time
from collections.abc import Mapping

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core.auth import TokenAuthentication
from core.contract import VersionRef
from core.permissions import requires
from core.request_ids import request_id
from core.tabular import TableError

from .api_parts import (
    CSVBodyParser,
    CSVRenderer,
    FastJSONRenderer,
    JSONBodyParser,
    PredictThrottle,
    QualityNegotiation,
    UploadParser,
    body_too_large,
    small_upload,
)
from .metrics import PREDICTED_ROWS, PREDICTION_SECONDS, PREDICTIONS
from .model_cache import model_cache
from .parsing import write_csv
from .prediction_log import prediction_log_answer
from .serializers import prediction_answer, prediction_options, query_options
from .services import FORMATS, Prediction, prediction_create
from .trials.routing import shadow_submit, trial_routed

# PredictionLog.client_request_id's max_length.
CLIENT_REQUEST_ID_MAX = 128

PREDICT_SCHEMA = extend_schema(
    parameters=[
        OpenApiParameter("model_name", description="Registered model (default rf_regressor)."),
        OpenApiParameter("version", description="A number, `latest` or `@alias` (default: `@champion`)."),
        OpenApiParameter("alias", description="An alias such as `champion`, instead of `version`."),
        OpenApiParameter(
            "format",
            enum=FORMATS,
            description="Engine (default `auto`: the faster one for the request; `X-Model-Format` names it).",
        ),
        OpenApiParameter(
            "interval",
            OpenApiTypes.FLOAT,
            description="A level in (0, 1), such as 0.9: adds split-conformal prediction intervals "
            "(`intervals` in JSON, `prediction_lower` and `prediction_upper` columns in CSV).",
        ),
        OpenApiParameter(
            "explain",
            OpenApiTypes.BOOL,
            description="Adds each feature's contribution per row (`contributions`; `contribution_*` columns in "
            "CSV), at most `MDS_EXPLAIN_MAX_ROWS` rows.",
        ),
    ],
    request={
        "multipart/form-data": inline_serializer("PredictionUpload", {"file": serializers.FileField()}),
        "text/csv": OpenApiTypes.STR,
        "application/json": OpenApiTypes.OBJECT,
    },
    responses={
        200: inline_serializer(
            "Prediction",
            {"predictions": serializers.ListField(child=serializers.FloatField()), "model": serializers.DictField()},
        )
    },
    description="One prediction per input row. JSON bodies use MLflow's scoring formats (`dataframe_split`, "
    "`dataframe_records`, `instances`); `Accept: text/csv` answers the rows plus a `prediction` column.",
)


class PredictionViewSet(viewsets.GenericViewSet):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    # The user (and so its permissions) is cached with its token for MDS_TOKEN_CACHE_TTL seconds.
    permission_classes = [requires("registry_mirror.predict")]
    throttle_classes = [PredictThrottle]
    parser_classes = [CSVBodyParser, JSONBodyParser, UploadParser, FormParser]
    renderer_classes = [FastJSONRenderer, CSVRenderer]
    content_negotiation_class = QualityNegotiation

    def initial(self, request, *args, **kwargs):
        # Before authentication, so a refused request is timed and carries its id too.
        request.started = time.perf_counter()
        request.request_id = request_id()
        request.client_request_id = client_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        request.served, request.rows = None, 0
        super().initial(request, *args, **kwargs)

    @PREDICT_SCHEMA
    def create(self, request):
        body, body_format, form = _request_body(request)
        options = self.request_options(request, form)
        model_name = options.get("model_name") or settings.MDS_DEFAULT_MODEL_NAME
        request.asked = (model_name, options["version"], options["format"])

        def predict(version: VersionRef) -> Prediction:
            return prediction_create(
                model_name=model_name,
                version=version,
                model_format=options["format"],
                body=body,
                body_format=body_format,
                interval=options.get("interval"),
                explain=options.get("explain", False),
            )

        # One cached lookup when no trial runs; see inference.trials.routing.
        routed = trial_routed(
            model_name=model_name, reference=options["version"], routing_key=routing_key(request), predict=predict
        )
        prediction = routed.prediction
        request.served, request.rows = (
            (prediction.name, str(prediction.version), prediction.model_format),
            len(prediction.values),
        )
        prediction_log_answer(
            prediction,
            request_id=request.request_id,
            caller_id=request.user.pk,
            client_request_id=request.client_request_id,
            trial=routed.log_fields(request.request_id),
        )
        shadow_submit(
            routed,
            interval=options.get("interval"),
            request_id=request.request_id,
            caller_id=request.user.pk,
            client_request_id=request.client_request_id,
        )
        # The engine that ran, also for CSV answers (which have no `model` object): the default picks per request.
        headers = {"X-Model-Version": str(prediction.version), "X-Model-Format": prediction.model_format}
        if routed.routing is not None:
            headers["X-Trial"] = str(routed.routing.trial.trial_id)
        if request.accepted_renderer.format == "csv":
            assert prediction.table is not None  # prediction_create keeps the rows it parsed
            return Response(
                write_csv(prediction.table, prediction.values, more=_csv_columns(prediction)), headers=headers
            )
        data = prediction_answer(prediction)
        data["request_id"] = str(request.request_id)
        if request.client_request_id:
            data["client_request_id"] = request.client_request_id
        return Response(data, headers=headers)

    def request_options(self, request, form: dict) -> Mapping:
        """Which model answers, and how: the query string's options, and an upload's form fields, validated."""
        if form:
            return prediction_options({**request.query_params.dict(), **form})
        return query_options(request.META.get("QUERY_STRING", ""))

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:
            # Errors are always JSON ({"message", "code", "extra"}), whatever the client asked for.
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        response = super().finalize_response(request, response, *args, **kwargs)
        request_id = getattr(request, "request_id", None)
        if request_id is not None:
            response["X-Request-Id"] = str(request_id)
            if request.client_request_id:
                response["X-Client-Request-Id"] = request.client_request_id
            _count(request, response.status_code)
        return response


def routing_key(request) -> str:
    """What keeps a caller on one side of a canary: ``X-Routing-Key``, else the caller, else the client's address."""
    return routing_key_of(
        request.META.get("HTTP_X_ROUTING_KEY", ""), request.user, request.META.get("REMOTE_ADDR", "")
    )


def routing_key_of(key: str, user, address: str) -> str:
    """The routing key of a request that names ``key`` (any protocol's), sent by ``user`` from ``address``."""
    key = key.strip()
    if key:
        return "key:" + key[:256]
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "ip:" + address


def client_request_id(incoming: str | None) -> str:
    """The client's X-Request-Id as kept beside the server's: printable ASCII, at most ``CLIENT_REQUEST_ID_MAX``
    characters (a longer one is cut), so it is safe in a log line, a header and the prediction log."""
    if not incoming:
        return ""
    return "".join(char for char in incoming[: CLIENT_REQUEST_ID_MAX * 4] if " " <= char <= "~").strip()[
        :CLIENT_REQUEST_ID_MAX
    ]


def _count(request, status: int) -> None:
    """Counts and times the answer under the version that served it; an error under the version asked for when
    this process knows it (never a name or alias a client made up, which would grow labels without bound).

    Every protocol counts through here: ``request.protocol`` names it (``mds`` when unset, as for /predict)."""
    served = request.served
    if served is None:
        asked = getattr(request, "asked", None)
        known = model_cache().known_version(asked[0], asked[1]) if asked else None
        served = (asked[0], str(known), asked[2]) if asked and known is not None else ("", "", "")
    labels = (*served, getattr(request, "protocol", "mds"))
    PREDICTIONS.labels(*labels, str(status)).inc()
    if status < 400:
        PREDICTION_SECONDS.labels(*labels).observe(time.perf_counter() - request.started)
        PREDICTED_ROWS.labels(*labels).inc(request.rows)


def _csv_columns(prediction) -> dict | None:
    """The CSV columns after ``prediction``: the interval's bounds, then the base and each contribution."""
    columns = {}
    if prediction.intervals is not None:
        columns["prediction_lower"] = prediction.intervals.lower
        columns["prediction_upper"] = prediction.intervals.upper
    if prediction.contributions is not None:
        contributions = prediction.contributions
        columns["contribution_base"] = [contributions.base] * len(contributions.values)
        for index, feature in enumerate(contributions.features):
            columns[f"contribution_{feature}"] = contributions.values[:, index]
    return columns or None


def _request_body(request) -> tuple[bytes, str, dict]:
    """The body as bytes, its format (``csv`` or ``json``) and any form fields of a multipart upload."""
    upload = small_upload(request)
    if upload is not None:
        return upload[0], "csv", upload[1]
    data = request.data
    if isinstance(data, bytes):
        return data, "json" if request.content_type.startswith("application/json") else "csv", {}
    upload = request.FILES.get("file")
    if upload is None:
        raise TableError(
            "Send the rows as a multipart `file`, a text/csv body or MLflow scoring JSON.", code="no_input"
        )
    if upload.size > settings.MDS_PREDICT_MAX_BYTES:
        raise body_too_large(upload.size)
    form = {key: value for key, value in data.items() if key != "file"}
    return upload.read(), "csv", form
