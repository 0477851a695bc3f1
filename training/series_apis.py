"""``/models/<name>/data`` (a model's dataset series) and ``/models/<name>/retrain``."""

from contextlib import nullcontext
from typing import IO, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http import request_params
from core.permissions import requires
from registry_mirror.services.aliases import model_name_check

from .apis import TrainThrottle
from .serializers import (
    RetrainRequestSerializer,
    SeriesAppendSerializer,
    SeriesSegmentSerializer,
    TrainingJobSerializer,
)
from .services import training_job_wait, training_wait_slot
from .services.series import retrain_start, series_append, series_end, series_get, series_segments
from .uploads import dataset_upload_handlers

CanTrain = requires("training.add_trainingjob")


class _Body:
    """The request body as a file to read in chunks (``uploads.upload_stage`` measures and spools it)."""

    def __init__(self, stream):
        self.stream = stream
        self.name = "data.csv"

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size) if self.stream is not None else b""


class CSVStreamParser(BaseParser):
    """A ``text/csv`` body, handed on unread: it is streamed to a temporary file, never held whole."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return _Body(stream)


class SeriesDataView(APIView):
    """A model's training series: list its segments, or append a CSV to it."""

    parser_classes = [MultiPartParser, FormParser, CSVStreamParser]

    def initialize_request(self, request, *args, **kwargs):
        if request.method == "POST":
            # As /train: a multipart CSV streams into a measured temporary file, refused past the size limit.
            request.upload_handlers = dataset_upload_handlers(request)
        return super().initialize_request(request, *args, **kwargs)

    def get_permissions(self):
        return [
            requires("training.add_trainingjob" if self.request.method == "POST" else "training.view_trainingjob")()
        ]

    def get_throttles(self):
        return [TrainThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description="The series' columns and segments, oldest first (`segments: []` before its first append).",
    )
    def get(self, request, name: str):
        model_name_check(name)
        return Response(_series_body(name))

    @extend_schema(
        request={
            "multipart/form-data": SeriesAppendSerializer,
            "text/csv": OpenApiTypes.STR,
        },
        responses={201: OpenApiTypes.OBJECT},
        description="Appends a CSV (multipart `file`, or the body as `text/csv`) to the model's series, checked "
        "whole as /train checks a file: 400 `column_mismatch` naming a column missing or extra, `bad_cell` / "
        "`bad_timestamp` naming column and row, `rows_before_series_end` naming the first row older than the "
        "series' last timestamp (a series only grows forward in time). A model MDS trained starts its series "
        "with the dataset that trained its newest version; `target`/`timestamp` name the columns of a series "
        "that starts with this file. 201 with the series. With the retraining policy's `on_new_data`, a "
        "retraining is queued.",
    )
    def post(self, request, name: str):
        model_name_check(name)
        data = request.data
        if isinstance(data, _Body):
            params = {**request.query_params.dict(), "file": data}
            options = {
                key: params.get(key) or default for key, default in (("target", "target"), ("timestamp", "timestamp"))
            }
            upload, file_name = cast(IO[bytes], data), "data.csv"
        else:
            checked = SeriesAppendSerializer(data=request_params(request))
            checked.is_valid(raise_exception=True)
            options = {key: checked.validated_data[key] for key in ("target", "timestamp")}
            upload = checked.validated_data["file"]
            file_name = upload.name or "data.csv"
        segment = series_append(name=name, file=upload, file_name=file_name, user=request.user, **options)
        body = _series_body(name)
        body["appended"] = SeriesSegmentSerializer(segment).data
        return Response(body, status=status.HTTP_201_CREATED)


def _series_body(name: str) -> dict:
    series = series_get(name=name)
    if series is None:
        return {"model_name": name, "target": None, "timestamp": None, "columns": [], "rows": 0, "segments": []}
    segments = series_segments(series=series)
    end = series_end(series)
    return {
        "model_name": name,
        "target": series.target_column,
        "timestamp": series.timestamp_column,
        "columns": series.columns,
        "rows": sum(segment.n_rows for segment in segments),
        "last_timestamp": serializers.DateTimeField().to_representation(end) if end else None,
        "segments": SeriesSegmentSerializer(segments, many=True).data,
    }


class RetrainView(APIView):
    """Retrain a model on its series: a training job, as /train's answer."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [CanTrain]

    def get_throttles(self):
        return [TrainThrottle()]

    @extend_schema(
        request=RetrainRequestSerializer,
        responses={
            200: TrainingJobSerializer,
            202: TrainingJobSerializer,
            409: inline_serializer("RetrainInProgress", {"message": serializers.CharField()}),
        },
        description="Trains a new version on the model's series (options in the query string or as form fields): "
        "`window` keeps the rows within that span of the series' last timestamp (`365d`, `90d`, `48h`; default "
        "the policy's window, else the whole series), with the parameters the last version was trained with "
        "(`params_used` of its job) and any of /train's options given here instead. 202 with the job "
        "(`trigger: manual`, `lineage`: which rows of which datasets); 200 once finished within `wait` seconds. "
        "The version becomes `@challenger`, never `@champion`. 404 `no_trained_version` if MDS trained no version "
        "of the model; 409 `retrain_in_progress` while a retraining of it is queued or running.",
    )
    def post(self, request, name: str):
        model_name_check(name)
        params = RetrainRequestSerializer(data=request_params(request))
        params.is_valid(raise_exception=True)
        options = dict(params.validated_data)
        wait = options.pop("wait")
        window = options.pop("window", None)
        job = retrain_start(name=name, user=request.user, window=window, overrides=options)
        headers = {}
        with training_wait_slot() if wait else nullcontext(True) as may_wait:
            if not may_wait:
                headers["X-Wait-Skipped"] = "busy"
            job = training_job_wait(job_id=job.pk, timeout=wait if may_wait else 0, job=job)
        body = TrainingJobSerializer(job, context={"request": request}).data
        answer = status.HTTP_200_OK if job.is_finished else status.HTTP_202_ACCEPTED
        return Response(body, status=answer, headers={"Location": body["url"], **headers})
