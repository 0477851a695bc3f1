"""``/predict``: predictions for rows of CSV or MLflow scoring JSON from a registered model version."""

from django.conf import settings
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core.permissions import requires
from core.tabular import TableError

from .api_parts import (
    AcceptCSVNegotiation,
    CachedTokenAuthentication,
    CSVBodyParser,
    CSVRenderer,
    FastJSONRenderer,
    JSONBodyParser,
    PredictThrottle,
    body_too_large,
)
from .parsing import write_csv
from .serializers import PredictionRequestSerializer, PredictionSerializer
from .services import FORMATS, model_cache_status, prediction_create

PREDICT_SCHEMA = extend_schema(
    parameters=[
        OpenApiParameter("model_name", description="Registered model (default rf_regressor)."),
        OpenApiParameter("version", description="A number, `latest` or `@alias` (default: `@champion`)."),
        OpenApiParameter("alias", description="An alias such as `champion`, instead of `version`."),
        OpenApiParameter("format", enum=FORMATS, description="Engine; `auto` picks the faster one."),
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
    serializer_class = PredictionSerializer
    authentication_classes = [CachedTokenAuthentication, SessionAuthentication]
    # The user (and so its permissions) is cached with its token for MDS_TOKEN_CACHE_TTL seconds.
    permission_classes = [requires("registry_mirror.predict")]
    throttle_classes = [PredictThrottle]
    parser_classes = [CSVBodyParser, JSONBodyParser, MultiPartParser, FormParser]
    renderer_classes = [FastJSONRenderer, CSVRenderer]
    content_negotiation_class = AcceptCSVNegotiation

    @PREDICT_SCHEMA
    def create(self, request):
        body, body_format, form = _request_body(request)
        params = PredictionRequestSerializer(data={**request.query_params.dict(), **form})
        params.is_valid(raise_exception=True)
        options = params.validated_data
        prediction = prediction_create(
            model_name=options.get("model_name") or settings.MDS_DEFAULT_MODEL_NAME,
            version=options["version"],
            model_format=options["format"],
            body=body,
            body_format=body_format,
        )
        headers = {"X-Model-Version": str(prediction.version)}
        if request.accepted_renderer.format == "csv":
            return Response(write_csv(prediction.table, prediction.values), headers=headers)
        return Response(self.get_serializer(prediction).data, headers=headers)

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:
            # Errors are always JSON ({"message", "code", "extra"}), whatever the client asked for.
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


def _request_body(request) -> tuple[bytes, str, dict]:
    """The body as bytes, its format (``csv`` or ``json``) and any form fields of a multipart upload."""
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


def ready(request):
    """Readiness: which versions this process has loaded (and aliases it knows); touches neither DB nor MLflow."""
    return JsonResponse(model_cache_status())
