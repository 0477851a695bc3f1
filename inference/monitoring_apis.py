"""``POST /feedback`` (actuals for logged predictions) and a version's live ``performance`` and ``drift``."""

from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApplicationError
from core.permissions import requires
from core.tabular import TableError

from .api_parts import CSVBodyParser, body_too_large
from .feedback import actuals_from_table, feedback_record, performance_get
from .monitoring import drift_get, version_monitored_check
from .parsing import parse_csv

# Whoever may predict may send actuals back (for their own predictions); whoever may read the registry may read
# how its versions do.
CanSendFeedback = requires("registry_mirror.predict")
CanReadModels = requires("registry_mirror.view_registeredmodel", "registry_mirror.view_modelversion")

WINDOW_PARAMETERS = [
    OpenApiParameter("since", description="ISO 8601; predictions made from then on (drift: default a day ago)."),
    OpenApiParameter("until", description="ISO 8601; predictions made before then (default now)."),
]


class FeedbackView(APIView):
    """The actuals of a logged prediction, one per predicted row, in order."""

    parser_classes = [JSONParser, CSVBodyParser, MultiPartParser]
    permission_classes = [CanSendFeedback]

    @extend_schema(
        parameters=[OpenApiParameter("request_id", description="With a CSV body: the prediction's request id.")],
        request={
            "application/json": inline_serializer(
                "Feedback",
                {
                    "request_id": serializers.UUIDField(),
                    "actuals": serializers.ListField(child=serializers.FloatField()),
                },
            ),
            "text/csv": OpenApiTypes.STR,
            "multipart/form-data": inline_serializer("FeedbackUpload", {"file": serializers.FileField()}),
        },
        responses={200: OpenApiTypes.OBJECT},
        description="JSON `{request_id, actuals}`, or a CSV (column `actual` or `target`, or a single column) with "
        "`?request_id=`. Only the prediction's caller (or a maintainer) may send them: another user's request id is "
        "404, as an unknown one. The same actuals again are accepted; other ones for the same prediction get 409.",
    )
    def post(self, request):
        request_id, actuals = _feedback_input(request)
        log = feedback_record(request_id=request_id, actuals=actuals, user=request.user)
        assert log.abs_error_sum is not None  # the actuals are recorded
        return Response(
            {
                "request_id": str(log.request_id),
                "model": {"name": log.model_name, "version": log.model_version},
                "n": log.n_rows,
                "mae": log.abs_error_sum / log.n_rows,
                "feedback_at": log.feedback_at,
            }
        )


def _feedback_input(request) -> tuple[str | None, list]:
    data = request.data
    query_id = request.query_params.get("request_id")
    if isinstance(data, bytes) or "file" in request.FILES:
        if isinstance(data, bytes):
            raw = data
        else:
            upload = request.FILES["file"]
            if upload.size > settings.MDS_PREDICT_MAX_BYTES:
                raise body_too_large(upload.size)
            raw = upload.read()
        table = parse_csv(raw, max_rows=settings.MDS_PREDICT_MAX_ROWS)
        return query_id or (data.get("request_id") if hasattr(data, "get") else None), actuals_from_table(table)
    if not isinstance(data, dict) or "actuals" not in data:
        raise TableError(
            'Send JSON {"request_id": ..., "actuals": [...]}, or a CSV of actuals with ?request_id=.', code="no_input"
        )
    return data.get("request_id") or query_id, data["actuals"]


def datetime_param(request, name: str) -> datetime | None:
    """An ISO 8601 date or date-time query parameter (UTC unless it says otherwise)."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    # A '+' of an offset arrives as a space when the client did not URL-encode it.
    text = raw.replace(" ", "+") if len(raw) > 10 else raw
    try:
        value = parse_datetime(text)
        if value is None and (day := parse_date(text)) is not None:
            value = datetime(day.year, day.month, day.day)
    except ValueError:
        value = None
    if value is None:
        raise ApplicationError(
            f"{name}: {raw!r} is not an ISO 8601 date or time (such as 2026-11-27T08:00:00Z).",
            code="invalid_input",
            extra={"field": name},
        )
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def _known_version(name: str, version: str) -> int:
    """The version number, if MDS serves (or served) it: 404 otherwise, 409 for a version never adopted."""
    number = int(version)
    version_monitored_check(model_name=name, version=number)
    return number


class VersionPerformanceView(APIView):
    permission_classes = [CanReadModels]

    @extend_schema(parameters=WINDOW_PARAMETERS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str, version: str):
        """Live MAE, RMSE, R² and interval coverage over the feedback, next to the training holdout's."""
        return Response(
            performance_get(
                model_name=name,
                version=_known_version(name, version),
                since=datetime_param(request, "since"),
                until=datetime_param(request, "until"),
            )
        )


class VersionDriftView(APIView):
    permission_classes = [CanReadModels]

    @extend_schema(parameters=WINDOW_PARAMETERS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str, version: str):
        """Per feature, the population stability index of the logged inputs against the training window."""
        number = _known_version(name, version)
        return Response(
            drift_get(
                model_name=name,
                version=number,
                since=datetime_param(request, "since"),
                until=datetime_param(request, "until"),
            )
        )
