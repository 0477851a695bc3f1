"""``/train``: start a training job from a CSV upload, and follow it."""

from contextlib import nullcontext

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from core.http import request_params
from core.permissions import requires
from core.throttles import SettingRateThrottle

from . import ml
from .selectors import training_job_get, training_job_list
from .serializers import TrainingJobSerializer, TrainingRequestSerializer
from .services import training_job_cancel, training_job_start, training_job_wait, training_wait_slot
from .uploads import dataset_upload_handlers


class TrainThrottle(SettingRateThrottle):
    """Training starts per user (``MDS_THROTTLE_TRAIN``): each one holds a worker for minutes."""

    scope = "train"
    setting = "MDS_THROTTLE_TRAIN"


class TrainingJobViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Trainers see and start their own jobs; maintainers (``training.view_all_jobs``) see everyone's."""

    serializer_class = TrainingJobSerializer
    parser_classes = [MultiPartParser, FormParser]
    lookup_value_regex = "[0-9]+"

    def initialize_request(self, request, *args, **kwargs):
        if request.method == "POST":
            # Before anything reads the body (session authentication's CSRF check does): the CSV streams into a
            # measured temporary file, and an upload over the limit is refused before the rest of it is read.
            request.upload_handlers = dataset_upload_handlers(request)
        return super().initialize_request(request, *args, **kwargs)

    def get_queryset(self):
        return training_job_list(user=self.request.user)

    def get_permissions(self):
        # Cancelling is for those who may start jobs: a trainer on their own, a maintainer on any.
        needed = (
            ("training.add_trainingjob",) if self.action in ("create", "cancel") else ("training.view_trainingjob",)
        )
        return [requires(*needed)()]

    def get_throttles(self):
        return [TrainThrottle()] if self.action == "create" else []

    @extend_schema(
        request={"multipart/form-data": TrainingRequestSerializer},
        responses={200: TrainingJobSerializer, 202: TrainingJobSerializer},
        description="Options may also be given in the query string. 202 with the accepted job; 200 with the "
        "finished job once it is done within `wait` seconds (in embedded mode too: the job trains on a thread of "
        "the server, off the request, unless `MDS_EMBEDDED_BACKGROUND_TRAINING` is off). At most "
        "`MDS_TRAIN_MAX_WAITERS` requests wait at once per server process: the others are answered at once, with "
        "an `X-Wait-Skipped` header. 503 with "
        "`Retry-After` when the dataset storage or the database is unavailable: nothing is stored then. Size "
        "parameters left out (`max_leaf_nodes`, `max_samples`) come from the server's size budget; a request "
        "whose forest would pass ONNX's 2 GiB or the worker memory budget is refused with 400 `model_too_large`.",
    )
    def create(self, request):
        params = TrainingRequestSerializer(data=request_params(request))
        params.is_valid(raise_exception=True)
        options = params.validated_data
        training_params = ml.TrainingParams(
            n_estimators=options["n_estimators"],
            max_depth=options["max_depth"],
            max_leaf_nodes=options["max_leaf_nodes"],
            max_samples=options["max_samples"],
            random_state=options["random_state"],
            test_size=options["test_size"],
            calibration_size=options["calibration_size"],
            estimator=options["estimator"],
            backtest=options["backtest"],
            gap=options["gap"],
            calendar=options["calendar"],
        )
        upload = options["file"]
        job = training_job_start(
            file=upload,
            file_name=upload.name or "dataset.csv",
            user=request.user,
            model_name=options.get("model_name") or settings.MDS_DEFAULT_MODEL_NAME,
            target=options["target"],
            timestamp=options["timestamp"],
            params=training_params,
        )
        # Read back: the job may already have ended (in-process training with background training off runs it
        # inside this request), and the answer says so.
        headers = {}
        with training_wait_slot() if options["wait"] else nullcontext(True) as may_wait:
            if not may_wait:
                headers["X-Wait-Skipped"] = "busy"
            job = training_job_wait(job_id=job.pk, timeout=options["wait"] if may_wait else 0, job=job)
        body = self.get_serializer(job).data
        answer = status.HTTP_200_OK if job.is_finished else status.HTTP_202_ACCEPTED
        return Response(body, status=answer, headers={"Location": body["url"], **headers})

    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(training_job_get(job_id=int(pk), user=request.user)).data)

    @extend_schema(
        request=None,
        responses={
            200: TrainingJobSerializer,
            404: OpenApiResponse(description="No such job, or another user's."),
            409: OpenApiResponse(
                description="`job_finished`: the job already ended; `job_registering`: its version is being "
                "registered and can no longer be stopped."
            ),
        },
        description="Cancel a queued or running job: it is `cancelled` at once; a running job's worker stops at its "
        "next checkpoint (between chunks of trees), ends its MLflow run as KILLED and registers no version.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(self.get_serializer(training_job_cancel(job_id=int(pk), user=request.user)).data)
