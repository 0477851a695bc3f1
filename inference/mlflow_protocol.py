"""MLflow's scoring protocol, as ``mlflow models serve`` speaks it: ``/ping``, ``/version`` and ``/invocations``.

So a team replaces ``mlflow models serve -m models:/NAME@champion`` by MDS without touching its clients
(``mlflow.pyfunc.scoring_server.client.ScoringServerClient``, SageMaker-style health checks, plain ``requests``).
``/invocations`` takes MLflow's bodies (``text/csv``; JSON with ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``, and ``params``, which a forest ignores as MLflow's sklearn flavor does) and answers
``{"predictions": [...]}``; errors are MLflow's ``{"error_code": ..., "message": ...}`` (plus MDS's ``code`` and
``extra``) with MDS's statuses.

It is ``/predict`` underneath (``PredictionViewSet``): the same roles, throttles, version resolution, engine
choice, prediction log, drift and metrics (under ``protocol="mlflow"``). The model is the query string's
(``?model_name=...&version=...``), else the server's ``MDS_SERVE_MODEL`` (``NAME``, ``NAME@alias``,
``NAME/3``, ``NAME/latest``), else ``/predict``'s default. A token is required unless
``MDS_INVOCATIONS_ANONYMOUS`` is set together with ``MDS_SERVE_MODEL``: then a caller without one (as MLflow's
client is) is answered by the pinned model only, throttled per address (``MDS_THROTTLE_INVOCATIONS_ANONYMOUS``).
"""

import re
from collections.abc import Mapping
from importlib import metadata

from django.conf import settings
from django.core.checks import Error, register
from django.http import HttpResponse
from django.utils.http import parse_header_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers

from core.contract import MODEL_NAME_PATTERN, VERSION_PATTERN
from core.throttles import SettingRateThrottle

from .api_parts import CSVBodyParser, FastJSONRenderer, JSONBodyParser
from .apis import PredictionViewSet
from .serializers import prediction_options

# MLflow's error codes (mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS) for MDS's statuses; any other 4xx is
# BAD_REQUEST, any other 5xx INTERNAL_ERROR.
ERROR_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}
MEDIA_TYPES = ("text/csv", "application/json")
# The options /invocations takes from its query string (the rows' options of /predict have no place in MLflow's
# answer).
QUERY_OPTIONS = ("model_name", "version", "alias", "format")


def ping(request):
    """What ``mlflow models serve`` answers while it runs (its ``/health`` too; MDS's ``/health`` says more)."""
    return HttpResponse("\n", content_type="application/json")


def version(request):
    """The MLflow version whose scoring protocol this server speaks, as ``mlflow models serve`` answers it."""
    try:
        spoken = metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        spoken = "unknown"
    return HttpResponse(spoken, content_type="application/json")


def served_model() -> dict[str, str]:
    """``MDS_SERVE_MODEL`` as /predict's options: ``{"model_name": ..., "version": ...}``; empty if unset."""
    value = settings.MDS_SERVE_MODEL.strip()
    if not value:
        return {}
    # Always matches: a name up to the first `@` or `/`, and what follows it (the system check checks both).
    name, separator, reference = re.fullmatch(r"([^@/]*)([@/]?)(.*)", value).groups()  # type: ignore[union-attr]
    if not separator:
        return {"model_name": name}
    return {"model_name": name, "version": reference if separator == "/" else "@" + reference}


def anonymous_allowed() -> bool:
    """Anonymous callers are answered only where the setting says so and the model is pinned."""
    return settings.MDS_INVOCATIONS_ANONYMOUS and bool(served_model())


class InvocationsAnonymousThrottle(SettingRateThrottle):
    """Anonymous ``/invocations`` per client address (``MDS_THROTTLE_INVOCATIONS_ANONYMOUS``)."""

    scope = "invocations_anonymous"
    setting = "MDS_THROTTLE_INVOCATIONS_ANONYMOUS"


class InvocationsViewSet(PredictionViewSet):
    parser_classes = [CSVBodyParser, JSONBodyParser]
    renderer_classes = [FastJSONRenderer]

    def initial(self, request, *args, **kwargs):
        # First, so refusals (authentication, throttling) are counted under the protocol too.
        request.protocol = "mlflow"
        super().initial(request, *args, **kwargs)

    def get_permissions(self):
        return [] if anonymous_allowed() else super().get_permissions()

    def get_throttles(self):
        if self.request.user.is_authenticated:
            return super().get_throttles()
        return [InvocationsAnonymousThrottle()]

    @extend_schema(
        operation_id="mlflow_invocations",
        parameters=[
            OpenApiParameter("model_name", description="Registered model (default: MDS_SERVE_MODEL's)."),
            OpenApiParameter("version", description="A number, `latest` or `@alias` (default: MDS_SERVE_MODEL's)."),
        ],
        request={"text/csv": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT},
        responses={
            200: inline_serializer(
                "MlflowPredictions", {"predictions": serializers.ListField(child=serializers.FloatField())}
            )
        },
        description="MLflow's scoring protocol (`mlflow models serve`): CSV or MLflow scoring JSON in, "
        '`{"predictions": [...]}` out.',
    )
    def create(self, request):
        _check_content_type(request.content_type)
        response = super().create(request)
        response.data = {"predictions": response.data["predictions"]}
        return response

    def request_options(self, request, form: dict) -> Mapping:
        query = request.query_params
        asked = {key: query[key] for key in QUERY_OPTIONS if key in query}
        if not request.user.is_authenticated and asked.keys() - {"format"}:
            raise exceptions.PermissionDenied("Without a token, /invocations answers the server's model only.")
        options = served_model()
        if "model_name" in asked:
            options.pop("version", None)
        return prediction_options({**options, **asked})

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400 and isinstance(response.data, dict) and "message" in response.data:
            status = response.status_code
            default = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
            response.data = {"error_code": ERROR_CODES.get(status, default), **response.data}
        return super().finalize_response(request, response, *args, **kwargs)


def _check_content_type(content_type: str) -> None:
    """MLflow's rules: CSV or JSON, UTF-8, no other parameter (a 1.x ``format=pandas-split`` is refused)."""
    media_type, params = parse_header_parameters(content_type or "")
    if params.get("charset", "utf-8").lower() != "utf-8":
        raise exceptions.UnsupportedMediaType(media_type, "The scoring server only supports UTF-8.")
    unexpected = sorted(set(params) - {"charset"})
    if unexpected:
        raise exceptions.UnsupportedMediaType(
            media_type, f"Unrecognized content type parameters: {', '.join(unexpected)}."
        )
    if media_type not in MEDIA_TYPES:
        raise exceptions.UnsupportedMediaType(
            media_type,
            f"This predictor only supports the following content types: {list(MEDIA_TYPES)}. Got {content_type!r}.",
        )


@register("mds")
def served_model_check(app_configs, **kwargs):
    """``MDS_SERVE_MODEL`` names a model and version as /predict reads them; anonymous needs it."""
    errors = []
    options = served_model()
    if options and not (
        re.fullmatch(MODEL_NAME_PATTERN, options["model_name"])
        and re.fullmatch(VERSION_PATTERN, options.get("version", "latest"))
    ):
        errors.append(
            Error(
                f"MDS_SERVE_MODEL {settings.MDS_SERVE_MODEL!r} is no model: give NAME, NAME@alias or NAME/VERSION.",
                id="mds.E101",
            )
        )
    if settings.MDS_INVOCATIONS_ANONYMOUS and not options:
        errors.append(
            Error(
                "MDS_INVOCATIONS_ANONYMOUS needs MDS_SERVE_MODEL: anonymous callers are answered by the pinned "
                "model only.",
                hint="Set MDS_SERVE_MODEL=NAME@champion, or turn MDS_INVOCATIONS_ANONYMOUS off.",
                id="mds.E102",
            )
        )
    return errors
