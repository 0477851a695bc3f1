from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from core.contract import MODEL_NAME_PATTERN
from core.errors import TooLarge

from . import ml
from .models import TrainingJob
from .services import trained_models


class TrainingRequestSerializer(serializers.Serializer):
    """A training request: the CSV plus options, from the query string or the multipart form."""

    file = serializers.FileField(allow_empty_file=True)
    model_name = serializers.RegexField(MODEL_NAME_PATTERN, required=False, max_length=200)
    target = serializers.CharField(default="target", max_length=200)
    timestamp = serializers.CharField(default="timestamp", max_length=200)
    n_estimators = serializers.IntegerField(default=100, min_value=1, max_value=2000)
    max_depth = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=200)
    # Left out, both come from the size budget (MDS_MAX_MODEL_NODES, MDS_TRAIN_MAX_SAMPLES): see params_used.
    max_leaf_nodes = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=2)
    max_samples = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    random_state = serializers.IntegerField(default=42, min_value=0, max_value=2**32 - 1)
    test_size = serializers.FloatField(default=0.2, min_value=0.01, max_value=0.9)
    calibration_size = serializers.FloatField(default=0.2, min_value=0.05, max_value=0.5)
    estimator = serializers.ChoiceField(
        choices=ml.ESTIMATOR_CHOICES,
        default=ml.RANDOM_FOREST,
        help_text="`auto` backtests each estimator and serves the one with the lowest mean RMSE.",
    )
    # Left out: 3 folds (fewer where the training window is too short for 3); 0 skips the backtest.
    backtest = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=20)
    gap = serializers.IntegerField(
        default=0,
        min_value=0,
        help_text="Rows left out between each backtest fold's training rows and its scored rows.",
    )
    calendar = serializers.BooleanField(
        default=False,
        help_text="Derive hour of day, day of week, day of year and month (sin/cos) from the timestamp as features; "
        "`/predict` then needs the timestamp column.",
    )
    wait = serializers.FloatField(default=0, min_value=0)

    def validate_file(self, value):
        if value.size > settings.MDS_TRAIN_MAX_UPLOAD_BYTES:
            raise TooLarge(
                f"The file has {value.size} bytes; at most {settings.MDS_TRAIN_MAX_UPLOAD_BYTES} are accepted.",
                extra={"size_bytes": value.size, "max_bytes": settings.MDS_TRAIN_MAX_UPLOAD_BYTES},
            )
        return value

    def validate_wait(self, value: float) -> float:
        if value > settings.MDS_TRAIN_MAX_WAIT:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.MDS_TRAIN_MAX_WAIT}."
            )
        return value


class DatasetSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="original_name")
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    n_rows = serializers.IntegerField()
    n_columns = serializers.IntegerField()


class TrainingJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=TrainingJob.Status.choices)
    stage = serializers.ChoiceField(choices=TrainingJob.Stage.choices)
    progress = serializers.FloatField(help_text="Share of the work done, 0-1.")
    model_name = serializers.CharField()
    trained_models = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    dataset = DatasetSummarySerializer()
    target = serializers.CharField(source="target_column")
    timestamp = serializers.CharField(source="timestamp_column")
    params = serializers.JSONField(help_text="The parameters as requested.")
    params_used = serializers.JSONField(
        help_text="The parameters the training used: the request's, with the size bounds it left open taken from "
        "the budget, and the size estimate they were checked against."
    )
    metrics = serializers.JSONField()
    backtest = serializers.JSONField(
        help_text="The rolling-origin backtest of the served estimator: each fold's MAE, RMSE and R², their mean and "
        "sample standard deviation, and with `estimator=auto` every candidate's figures (`leaderboard`, best first)."
    )
    counts = serializers.JSONField()
    trigger = serializers.CharField(
        help_text="Why a retraining started (`manual`, `schedule`, `new_data`, `drift`, "
        "`degradation`); empty for /train."
    )
    lineage = serializers.JSONField(
        help_text="A retraining's rows: per dataset of the series, the rows taken (file "
        "rows `row_first`..`row_last`, `n_rows`, their timestamps) and where they sit in the joined dataset."
    )
    mlflow_run_id = serializers.CharField()
    registered_version = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)

    def get_url(self, job: TrainingJob) -> str:
        path = reverse("training-job-detail", args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_trained_models(self, job: TrainingJob) -> list[dict]:
        return trained_models(job)

    def get_error(self, job: TrainingJob) -> dict | None:
        if job.status != TrainingJob.Status.FAILED:
            return None
        return {"code": job.error_code, "message": job.error_message, "extra": job.error_extra}


class SeriesSegmentSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    name = serializers.CharField(source="dataset.original_name")
    sha256 = serializers.CharField(source="dataset.sha256")
    kind = serializers.CharField(
        source="source", help_text="`upload` (appended) or `training` (the dataset of the training job `from_job`)."
    )
    from_job = serializers.IntegerField(source="from_job_id", allow_null=True)
    rows = serializers.IntegerField(source="n_rows", help_text="Rows with a target.")
    first_timestamp = serializers.DateTimeField(allow_null=True)
    last_timestamp = serializers.DateTimeField(allow_null=True)
    appended_at = serializers.DateTimeField(source="created_at")


class SeriesAppendSerializer(serializers.Serializer):
    """An append: the CSV (multipart ``file``, or the body as text/csv), and the columns of a new series."""

    file = serializers.FileField(allow_empty_file=True)
    target = serializers.CharField(default="target", max_length=200)
    timestamp = serializers.CharField(default="timestamp", max_length=200)

    def validate_file(self, value):
        return TrainingRequestSerializer().validate_file(value)


class RetrainRequestSerializer(serializers.Serializer):
    """A retraining: the window, and any of /train's options to change from the last version's."""

    window = serializers.CharField(
        required=False, allow_blank=True, max_length=16, help_text='A trailing window: "365d", "90d", "48h".'
    )
    n_estimators = serializers.IntegerField(required=False, min_value=1, max_value=2000)
    max_depth = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=200)
    max_leaf_nodes = serializers.IntegerField(required=False, allow_null=True, min_value=2)
    max_samples = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    random_state = serializers.IntegerField(required=False, min_value=0, max_value=2**32 - 1)
    test_size = serializers.FloatField(required=False, min_value=0.01, max_value=0.9)
    calibration_size = serializers.FloatField(required=False, min_value=0.05, max_value=0.5)
    estimator = serializers.ChoiceField(required=False, choices=ml.ESTIMATOR_CHOICES)
    backtest = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=20)
    gap = serializers.IntegerField(required=False, min_value=0)
    calendar = serializers.BooleanField(required=False)
    wait = serializers.FloatField(default=0, min_value=0)

    def validate_wait(self, value: float) -> float:
        return TrainingRequestSerializer().validate_wait(value)
