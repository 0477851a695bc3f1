"""``/batch``: score a file on the workers, follow the job, download its result (``docs/batch.md``)."""

import contextlib
import tempfile
import uuid

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.response import Response

from core import faults
from core.auth import TokenAuthentication
from core.contract import ALIAS_PATTERN, MODEL_NAME_PATTERN, VersionRef
from core.errors import ApplicationError, Conflict, NotFound, TooLarge
from core.permissions import requires

from ..models import BatchJob
from ..serializers import VersionRefField
from ..services import FORMATS
from . import objects
from .selectors import batch_jobs_visible
from .services import BatchInput, batch_job_cancel, batch_job_create, batch_model_warm_early
from .sources import dataset_object

RAW_BLOCK_BYTES = 1 << 20
# Multipart framing around the file (boundaries, part headers, the form's small fields).
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def too_large(size: int, *, declared: bool = False) -> TooLarge:
    limit = settings.MDS_BATCH_MAX_UPLOAD_BYTES
    said = f"The request has {size} bytes" if declared else f"The upload is over {limit} bytes"
    return TooLarge(
        f"{said}; a batch input of at most {limit} bytes (MDS_BATCH_MAX_UPLOAD_BYTES) is accepted. Store larger "
        "files in the datasets bucket and give `object=<key>`.",
        extra={"size_bytes": size, "max_bytes": limit},
    )


def upload_name(key: uuid.UUID) -> str:
    """Where an upload is stored, named before its format is known: it is sent to storage as it arrives."""
    return f"batch/{key.hex}/input"


class _Follower:
    """Hands a growing temporary file to ``objects.upload_follow`` part by part, flushed first."""

    def __init__(self, file) -> None:
        self.key = uuid.uuid4()
        self._file = file
        self.upload = objects.upload_follow(upload_name(self.key), file.name)
        self._written, self._announced = 0, 0

    def wrote(self, size: int) -> None:
        self._written += size
        if self.upload is not None and self._written - self._announced >= objects.FOLLOW_PART_BYTES:
            self._file.flush()
            self._announced = self._written
            self.upload.written(self._written)

    def finish(self) -> None:
        self._file.flush()
        if self.upload is not None:
            self.upload.written(self._written)

    def abort(self) -> None:
        if self.upload is not None:
            self.upload.abort()


class BatchUploadHandler(TemporaryFileUploadHandler):
    """A multipart upload streamed to a temporary file and, on S3, to storage as it arrives (``follower``);
    refused (413) past ``MDS_BATCH_MAX_UPLOAD_BYTES``: at once when the request says it is larger, else at the first
    byte over."""

    received = 0
    follower: "_Follower | None" = None

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        limit = settings.MDS_BATCH_MAX_UPLOAD_BYTES
        if content_length and content_length > limit + MULTIPART_OVERHEAD_BYTES:
            raise too_large(content_length, declared=True)
        self.received = 0
        return None

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        # Only the first `file` is followed: the view stores any other way it is given whole.
        self._following = field_name == "file" and self.follower is None
        if self._following:
            self.follower = _Follower(self.file.file)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.MDS_BATCH_MAX_UPLOAD_BYTES:
            self.upload_interrupted()
            with contextlib.suppress(OSError):
                self.file.close()
            raise too_large(self.received)
        super().receive_data_chunk(raw_data, start)
        if self._following and self.follower is not None:
            self.follower.wrote(len(raw_data))

    def file_complete(self, file_size):
        if self._following and self.follower is not None:
            self.follower.finish()
        return super().file_complete(file_size)

    def upload_interrupted(self):
        if self.follower is not None:
            self.follower.abort()
        return super().upload_interrupted()


class RawUpload:
    """A raw request body (text/csv, Parquet, octet-stream) streamed to a temporary file as it arrives, and on S3 to
    storage too (``follower``)."""

    def __init__(self, content_type: str):
        self.content_type = content_type
        self.file = tempfile.NamedTemporaryFile(prefix="mds-batch-upload-")  # noqa: SIM115 - closed with the request
        self.follower = _Follower(self.file)


class RawBodyParser(BaseParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.MDS_BATCH_MAX_UPLOAD_BYTES
        request = (parser_context or {}).get("request")
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        if declared > limit:
            raise too_large(declared, declared=True)
        upload = RawUpload(media_type or "")
        received = 0
        try:
            if stream is not None:
                while block := stream.read(RAW_BLOCK_BYTES):
                    received += len(block)
                    if received > limit:
                        raise too_large(received)
                    upload.file.write(block)
                    upload.follower.wrote(len(block))
            if received < declared:
                # The server's reader ends a body cut short as if it were whole.
                raise ApplicationError(
                    f"The upload ended after {received} of its {declared} bytes.",
                    code="incomplete_upload",
                    extra={"received_bytes": received, "declared_bytes": declared},
                )
            upload.follower.finish()
        except BaseException:
            # Too large, or the client gone: nothing is stored.
            upload.follower.abort()
            upload.file.close()
            raise
        return upload


class CSVUploadParser(RawBodyParser):
    media_type = "text/csv"


class ParquetUploadParser(RawBodyParser):
    media_type = "application/vnd.apache.parquet"


class OctetStreamParser(RawBodyParser):
    media_type = "application/octet-stream"


class BatchRequestSerializer(serializers.Serializer):
    model_name = serializers.RegexField(MODEL_NAME_PATTERN, required=False)
    version = VersionRefField(required=False)
    alias = serializers.RegexField(ALIAS_PATTERN, required=False)
    format = serializers.ChoiceField(choices=FORMATS, default="auto")
    interval = serializers.FloatField(required=False, min_value=0, max_value=1)
    explain = serializers.BooleanField(default=False)
    passthrough = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    on_error = serializers.ChoiceField(choices=BatchJob.OnError.values, default=BatchJob.OnError.FAIL)
    input_format = serializers.ChoiceField(choices=BatchJob.Format.values, required=False)
    output_format = serializers.ChoiceField(choices=BatchJob.Format.values, default=BatchJob.Format.CSV)
    dataset = serializers.IntegerField(required=False, min_value=1)
    object = serializers.CharField(required=False, max_length=500)

    def validate_interval(self, value: float) -> float:
        if not 0 < value < 1:
            raise serializers.ValidationError("Give a level strictly between 0 and 1, such as 0.9.")
        return value

    def validate_object(self, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise serializers.ValidationError("Give an object's key in the datasets bucket, such as datasets/x.csv.")
        return value

    def validate(self, attrs: dict) -> dict:
        if "version" in attrs and "alias" in attrs:
            raise serializers.ValidationError({"alias": "Give either version or alias, not both."})
        alias = attrs.pop("alias", None)
        if "version" not in attrs:
            attrs["version"] = VersionRef(alias=alias or settings.MDS_SERVING_ALIAS)
        attrs["passthrough"] = [name.strip() for name in attrs.get("passthrough", "").split(",") if name.strip()]
        return attrs


class BatchJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=BatchJob.Status.choices)
    model_name = serializers.CharField()
    model_version = serializers.IntegerField()
    format = serializers.CharField(source="model_format")
    input_format = serializers.CharField()
    output_format = serializers.CharField()
    passthrough = serializers.JSONField()
    on_error = serializers.CharField()
    interval = serializers.FloatField(allow_null=True)
    explain = serializers.BooleanField()
    rows_total = serializers.IntegerField(allow_null=True)
    rows_done = serializers.IntegerField()
    rows_skipped = serializers.IntegerField()
    progress = serializers.FloatField(help_text="Share of the rows scored or skipped, 0-1 (1 once joined).")
    chunks_total = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    error = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField()
    errors_url = serializers.SerializerMethodField()
    drift = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def _url(self, name: str, job: BatchJob) -> str:
        return reverse(name, args=[job.pk])

    def get_url(self, job: BatchJob) -> str:
        return self._url("batch-job-detail", job)

    def get_error(self, job: BatchJob) -> dict | None:
        if job.status != BatchJob.Status.FAILED:
            return None
        return {"code": job.error_code, "message": job.error_message, "extra": job.error_extra}

    def get_result_url(self, job: BatchJob) -> str | None:
        return self._url("batch-job-result", job) if job.status == BatchJob.Status.SUCCEEDED else None

    def get_errors_url(self, job: BatchJob) -> str | None:
        return self._url("batch-job-errors", job) if job.errors_name else None


class BatchJobViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Predictors and trainers score files and follow their own jobs."""

    serializer_class = BatchJobSerializer
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [requires("registry_mirror.predict")]
    parser_classes = [MultiPartParser, FormParser, CSVUploadParser, ParquetUploadParser, OctetStreamParser]
    lookup_value_regex = "[0-9]+"

    def initialize_request(self, request, *args, **kwargs):
        if request.method == "POST":
            # An upload streams to a temporary file (never held in memory), read only for its header here.
            request.upload_handlers = [BatchUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    def get_queryset(self):
        return batch_jobs_visible(self.request.user)

    def _job(self, pk) -> BatchJob:
        job = self.get_queryset().filter(pk=int(pk)).first()
        if job is None:
            raise NotFound(f"No batch job {pk}.", code="not_found", extra={"id": int(pk)})
        return job

    @extend_schema(
        request={
            "multipart/form-data": OpenApiTypes.OBJECT,
            "text/csv": OpenApiTypes.BINARY,
            "application/vnd.apache.parquet": OpenApiTypes.BINARY,
        },
        responses={202: BatchJobSerializer},
        description="Score a CSV or Parquet file of any size on the workers: an upload (`file`, or the raw body), "
        "a stored dataset (`dataset=<id>`) or an object of the datasets bucket (`object=<key>`). Options in the "
        "query string or as form fields. 202 with the queued job; follow it at `url`.",
    )
    def create(self, request):
        handler = next((h for h in request.upload_handlers if isinstance(h, BatchUploadHandler)), None)
        upload: RawUpload | None = None
        job = None
        warmed = self._warm_early(request)
        try:
            data = request.data
            upload = data if isinstance(data, RawUpload) else None
            form = {} if upload is not None else {k: v for k, v in data.items() if k != "file"}
            params = BatchRequestSerializer(data={**request.query_params.dict(), **form})
            params.is_valid(raise_exception=True)
            options = params.validated_data
            source = self._source(request, options, upload)
            model_name = options.get("model_name") or settings.MDS_DEFAULT_MODEL_NAME
            job = batch_job_create(
                user=request.user,
                model_name=model_name,
                version=options["version"],
                model_format=options["format"],
                source=source,
                output_format=options["output_format"],
                interval=options.get("interval"),
                explain=options["explain"],
                passthrough=options["passthrough"],
                on_error=options["on_error"],
                # The hint sent as the request began holds unless the form named another version.
                warm_sent=warmed == (model_name, options["version"], options["format"]),
            )
        finally:
            follower = upload.follower if upload is not None else handler.follower if handler is not None else None
            if follower is not None:
                # Unless the job stored it: refused (a bad header, too large, the client gone...), the upload sent
                # so far is dropped.
                follower.abort()
            if upload is not None:
                with contextlib.suppress(OSError):
                    upload.file.close()
        job.refresh_from_db()
        body = self.get_serializer(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

    def _source(self, request, options: dict, upload: RawUpload | None) -> BatchInput:
        given = [name for name in ("dataset", "object") if name in options]
        files = request.FILES.get("file") if upload is None else None
        if len(given) + (upload is not None or files is not None) != 1:
            raise ApplicationError(
                "Give exactly one input: a `file` upload (or a text/csv or Parquet body), `dataset=<id>` or "
                "`object=<key>`.",
                code="no_input",
            )
        input_format = options.get("input_format")
        if upload is not None:
            return BatchInput(
                path=upload.file.name,
                content_type=upload.content_type,
                input_format=input_format,
                **self._followed(upload.follower, upload.file.name),
            )
        if files is not None:
            path = files.temporary_file_path()
            handler = next((h for h in request.upload_handlers if isinstance(h, BatchUploadHandler)), None)
            return BatchInput(
                path=path,
                file_name=files.name or "",
                content_type=files.content_type or "",
                input_format=input_format,
                **self._followed(handler.follower if handler is not None else None, path),
            )
        if "dataset" in options:
            name = dataset_object(options["dataset"], request.user)
            if name is None:
                raise NotFound(f"No dataset {options['dataset']}.", extra={"dataset": options["dataset"]})
            return BatchInput(stored_name=name, input_format=input_format)
        return BatchInput(stored_name=options["object"], input_format=input_format)

    @staticmethod
    def _warm_early(request) -> tuple | None:
        """An upload naming its version in the query string has it loaded while the body arrives; what was asked
        for (model, version, format), or ``None``."""
        media = request.content_type.split(";")[0].strip()
        if media not in ("multipart/form-data", *(p.media_type for p in (CSVUploadParser, ParquetUploadParser))):
            return None
        params = BatchRequestSerializer(data=request.query_params.dict())
        if not params.is_valid() or "dataset" in params.validated_data or "object" in params.validated_data:
            return None
        options = params.validated_data
        wanted = (options.get("model_name") or settings.MDS_DEFAULT_MODEL_NAME, options["version"], options["format"])
        sent = batch_model_warm_early(model_name=wanted[0], version=wanted[1], model_format=wanted[2])
        return wanted if sent else None

    @staticmethod
    def _followed(follower: _Follower | None, path: str) -> dict:
        """The upload already on its way to storage, when it is this file (else the file is stored whole)."""
        if follower is None or follower.upload is None or follower.upload.path != path:
            return {}
        return {"key": follower.key, "followed": follower.upload}

    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self._job(pk)).data)

    @extend_schema(request=None, responses={200: BatchJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(self.get_serializer(batch_job_cancel(job=self._job(pk))).data)

    @extend_schema(responses={200: OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def result(self, request, pk=None):
        job = self._job(pk)
        if job.status != BatchJob.Status.SUCCEEDED:
            raise Conflict(
                f"Batch job {job.pk} is {job.status}: its result exists once it succeeds.",
                code="job_not_finished",
                extra={"status": job.status},
            )
        media = "text/csv" if job.output_format == BatchJob.Format.CSV else "application/vnd.apache.parquet"
        return object_response(job.result_name, media, f"batch-{job.pk}.{job.output_format}")

    @extend_schema(responses={200: OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def errors(self, request, pk=None):
        job = self._job(pk)
        if not job.errors_name:
            raise NotFound(f"Batch job {job.pk} has no rejected rows.", code="no_errors")
        return object_response(job.errors_name, "text/csv", f"batch-{job.pk}-errors.csv")


def object_response(name: str, media_type: str, file_name: str) -> StreamingHttpResponse:
    """The stored object ``name`` streamed in 1 MiB blocks as an attachment; opened first, so a storage outage is
    a 503, not a broken download."""
    try:
        size = objects.size(name)
        stream = objects.open_range(name, 0, size)
    except Exception as exc:
        unavailable = faults.unavailable(exc)
        if unavailable is None:
            raise
        raise unavailable from exc

    def blocks():
        try:
            while block := stream.read(objects.STREAM_BLOCK_BYTES):
                yield block
        finally:
            stream.close()

    response = StreamingHttpResponse(blocks(), content_type=media_type)
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    response["Content-Length"] = str(size)
    return response
