"""Uploaded datasets and the training jobs that turn them into registered model versions."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import BaseModel, JobStatus


def dataset_upload_to(instance: "Dataset", filename: str) -> str:
    # A fresh UUID per upload: object keys never collide, and no client-chosen name (too long, unsafe
    # characters) reaches the storage; the name as uploaded is kept in `original_name`.
    return f"datasets/{uuid.uuid4().hex}.csv"


class Dataset(BaseModel):
    file = models.FileField(upload_to=dataset_upload_to, max_length=300)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveBigIntegerField()
    n_rows = models.PositiveIntegerField()
    n_columns = models.PositiveIntegerField()
    columns = models.JSONField(default=list)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="datasets"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.sha256[:12]})"


class TrainingJob(BaseModel):
    class Trigger(models.TextChoices):
        # Why a retraining started; a job of `/train` has none.
        NONE = "", "Not a retraining"
        MANUAL = "manual", "Asked for (POST /models/<name>/retrain)"
        SCHEDULE = "schedule", "The policy's schedule"
        NEW_DATA = "new_data", "New data appended to the series"
        DRIFT = "drift", "Drift of the champion's inputs"
        DEGRADATION = "degradation", "The champion's live MAE degraded"

    Status = JobStatus

    class Stage(models.TextChoices):
        QUEUED = "queued", "Queued"
        LOADING = "loading", "Loading dataset"
        TRAINING = "training", "Training and converting"
        REGISTERING = "registering", "Logging and registering in MLflow"
        DONE = "done", "Done"

    # Names the job in MLflow (a run tag), so a retried or redelivered job finds the version it already made.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="training_jobs")
    model_name = models.CharField(max_length=200)
    target_column = models.CharField(max_length=200)
    timestamp_column = models.CharField(max_length=200)
    params = models.JSONField(default=dict)
    # What the training used: the request's params with the size bounds it left open filled in from the budget
    # (training.sizing), and the estimate they were checked against.
    params_used = models.JSONField(default=dict, blank=True)
    # Share of the work done (0-1), written by the execution at most every MDS_PROGRESS_INTERVAL seconds.
    progress = models.FloatField(default=0.0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.QUEUED)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    # What the error names besides its message (the column and row of a bad cell), as a 400 body's `extra`.
    error_extra = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # The rolling-origin backtest (training.ml.backtest): per-fold and summary figures, and auto's leaderboard.
    backtest = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    celery_task_id = models.CharField(max_length=64, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    mlflow_model_id = models.CharField(max_length=64, blank=True)
    registered_version = models.PositiveIntegerField(null=True, blank=True)
    # The job row is the outbox: set once a message for it reached the broker; a queued job without one (the
    # broker was down) is sent again by the dispatcher.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # The lease of the one execution running the job: an id per claim, the process holding it (host:pid), and
    # its heartbeat; the dispatcher re-queues a running job whose heartbeat went stale.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    # A retraining on the model's dataset series: why it started, and which rows of which datasets it trains on
    # (`training.services.series`); its version becomes the challenger, never the champion.
    trigger = models.CharField(max_length=16, choices=Trigger.choices, blank=True, default="", db_index=True)
    lineage = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # Without it a user sees only the jobs (and datasets) they started.
        permissions = [("view_all_jobs", "Can see every user's training jobs and datasets")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="success") | Q(registered_version__isnull=False),
                name="training_job_success_has_version",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error_code=""),
                name="training_job_failure_has_error",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0.0, progress__lte=1.0),
                name="training_job_progress_is_a_share",
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | Q(registered_version__isnull=True),
                name="training_job_cancelled_has_no_version",
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} {self.model_name} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class DatasetSeries(BaseModel):
    """A model's training series: datasets appended in time order, which retraining trains on (a window of).

    Its columns are fixed by its first segment; every segment after it has the same ones and no row older than
    the series' end.
    """

    model_name = models.CharField(max_length=200, unique=True)
    target_column = models.CharField(max_length=200)
    timestamp_column = models.CharField(max_length=200)
    # In training order (timestamp, features, target), as `Dataset.columns`; empty until the first segment.
    columns = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="dataset_series"
    )

    class Meta:
        ordering = ["model_name"]
        verbose_name_plural = "dataset series"

    def __str__(self) -> str:
        return f"{self.model_name} series"


class SeriesSegment(BaseModel):
    """One dataset of a series, in order; ``created_at`` is when it was appended."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Appended (POST /models/<name>/data)"
        # The series' first segment, taken from the dataset that trained the model's newest version.
        TRAINING = "training", "The dataset of a training job"

    series = models.ForeignKey(DatasetSeries, on_delete=models.CASCADE, related_name="segments")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="series_segments")
    position = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.UPLOAD)
    # The job whose dataset became this segment (source "training").
    from_job = models.ForeignKey(
        "TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="series_segments"
    )
    # Data rows of the file, and the oldest and newest timestamp among those with a target.
    n_rows = models.PositiveIntegerField()
    first_timestamp = models.DateTimeField(null=True, blank=True)
    last_timestamp = models.DateTimeField(null=True, blank=True)
    appended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="series_segments"
    )

    class Meta:
        ordering = ["series", "position"]
        constraints = [
            models.UniqueConstraint(fields=["series", "position"], name="series_segment_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.series.model_name} segment {self.position} (dataset {self.dataset_id})"


class RetrainRequest(BaseModel):
    """A policy's trigger not yet acted on (``training.services.series``).

    Written in the transaction that fired it and deleted once a retraining started from it (or one already under
    way made it moot), so a trigger outlives a broker that was down or a process killed before its task ran: the
    schedule's beat task starts what is left. A start that fails with no dependency down counts an attempt; after
    ``RETRAIN_START_ATTEMPTS`` the trigger is dropped.
    """

    model_name = models.CharField(max_length=256, db_index=True)
    trigger = models.CharField(max_length=16, choices=TrainingJob.Trigger.choices)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Starts that failed with no dependency down.")
    last_error = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.model_name} retraining asked by {self.trigger}"
