"""What serving remembers: each prediction answered (and the actuals fed back for it), and daily monitoring reports.

The log belongs to this app: training never reads it, and the registry mirror is only read (for the holdout's
metrics to compare with). Rows are written off the request path, in batches (``inference.prediction_log``), and
deleted after ``MDS_PREDICTION_LOG_DAYS`` days; the daily reports keep the summaries for longer.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import BaseModel, JobStatus


class PredictionLog(models.Model):
    """One ``/predict`` answer: its inputs, outputs and the version and engine that computed them.

    Arrays are stored as raw little-endian bytes (``numpy.tobytes``): inputs as the float32 matrix the model saw
    (``n_rows`` × ``len(feature_names)``, row-major), predictions, interval bounds and actuals as float64. A 10k-row
    batch of 8 features is 400 kB this way against ~1.5 MB as JSON text, and encoding it costs microseconds.
    """

    # The answer's X-Request-Id, made by the server for each answer: the key its caller sends actuals back with.
    request_id = models.UUIDField(unique=True)
    # The X-Request-Id the client (or a proxy) sent, if any: kept for tracing, never a key.
    client_request_id = models.CharField(max_length=128, blank=True, default="")
    # Who asked: only they (or a maintainer, ``inference.feedback_all``) may send its actuals. No database
    # constraint: a user deleted while their answers wait in the writer's queue must not fail the whole batch.
    caller = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    # When the prediction was answered (not when the batch reached the database, up to a few seconds later).
    predicted_at = models.DateTimeField(db_index=True)
    model_name = models.CharField(max_length=256)
    model_version = models.PositiveIntegerField()
    engine = models.CharField(max_length=16)
    n_rows = models.PositiveIntegerField()
    feature_names = models.JSONField(default=list)
    inputs = models.BinaryField()
    predictions = models.BinaryField()
    interval_level = models.FloatField(null=True, blank=True)
    interval_lower = models.BinaryField(null=True, blank=True)
    interval_upper = models.BinaryField(null=True, blank=True)

    # Feedback: the actuals (one per row) and the sums live performance is aggregated from in SQL.
    actuals = models.BinaryField(null=True, blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    abs_error_sum = models.FloatField(null=True, blank=True)
    squared_error_sum = models.FloatField(null=True, blank=True)
    actual_sum = models.FloatField(null=True, blank=True)
    actual_squared_sum = models.FloatField(null=True, blank=True)
    # Rows whose actual fell inside the interval answered with the prediction (only when one was asked for).
    covered = models.PositiveIntegerField(null=True, blank=True)

    # Live trials (``inference.trials``): the trial an answer or a shadow scoring belongs to; ``pair_id`` is the
    # answer's request id on both the answer and the other version's scoring of the same rows (``shadow``), so
    # feedback for the answer pairs the two versions' errors. ``latency_ms``: the scoring's own time (trial rows).
    trial = models.ForeignKey(
        "Trial", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    pair_id = models.UUIDField(null=True, blank=True, db_index=True)
    shadow = models.BooleanField(default=False)
    latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-predicted_at"]
        indexes = [
            models.Index(fields=["model_name", "model_version", "predicted_at"], name="prediction_log_version_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(actuals__isnull=True) | Q(feedback_at__isnull=False, abs_error_sum__isnull=False),
                name="prediction_log_feedback_complete",
            ),
        ]
        permissions = [("feedback_all", "Can send actuals for any user's predictions")]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_name} v{self.model_version} ({self.n_rows} rows)"


class MonitoringReport(BaseModel):
    """A version's drift and live performance over one window, recorded daily by beat (and on demand)."""

    model_name = models.CharField(max_length=256)
    model_version = models.PositiveIntegerField()
    since = models.DateTimeField()
    until = models.DateTimeField()
    # Logged input rows in the window, and rows among them with actuals.
    n_rows = models.PositiveIntegerField(default=0)
    n_feedback = models.PositiveIntegerField(default=0)
    # Whether any feature drifted; null when the window held too few rows to tell (or the version has no profile).
    drifted = models.BooleanField(null=True)
    drifted_features = models.JSONField(default=list, blank=True)
    drift = models.JSONField(default=dict, blank=True)
    performance = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-until", "model_name", "-model_version"]
        indexes = [models.Index(fields=["model_name", "model_version", "-until"], name="monitoring_version_until")]

    def __str__(self) -> str:
        return f"{self.model_name} v{self.model_version} {self.since:%Y-%m-%d %H:%M} - {self.until:%Y-%m-%d %H:%M}"


class BatchJob(BaseModel):
    """A file scored on the workers (``inference.batch``): split into chunks, each scored by any worker, the parts
    joined into one result object. The job row and its chunks are the outbox: a message lost with the broker, or a
    worker lost mid-chunk, is made good by the sweeper (``batch_jobs_sweep``)."""

    Status = JobStatus

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"

    class OnError(models.TextChoices):
        FAIL = "fail", "Fail the job"
        SKIP = "skip", "Skip the row"

    # Names the job's objects in storage (batch/<key>/...).
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    model_name = models.CharField(max_length=256)
    model_version = models.PositiveIntegerField()
    # The engine asked for (``auto``, ``onnx``, ``sklearn``), as /predict's ``format``.
    model_format = models.CharField(max_length=16, default="auto")
    interval = models.FloatField(null=True, blank=True)
    explain = models.BooleanField(default=False)
    passthrough = models.JSONField(default=list, blank=True)
    on_error = models.CharField(max_length=8, choices=OnError.choices, default=OnError.FAIL)
    # The input: an object of the datasets storage, its format, size and header (CSV) or schema's columns.
    input_name = models.CharField(max_length=500)
    input_format = models.CharField(max_length=8, choices=Format.choices)
    input_bytes = models.PositiveBigIntegerField(default=0)
    input_columns = models.JSONField(default=list, blank=True)
    # The CSV's header line as it is in the file (prefixed to every chunk's rows).
    input_header = models.TextField(blank=True)
    # Whether the input was uploaded for this job (and is deleted with its parts), not a stored dataset or object.
    input_owned = models.BooleanField(default=False)
    output_format = models.CharField(max_length=8, choices=Format.choices, default=Format.CSV)
    result_name = models.CharField(max_length=500, blank=True)
    errors_name = models.CharField(max_length=500, blank=True)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_skipped = models.PositiveBigIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    # The input's drift against the version's training profile, on a bounded sample (``inference.drift``).
    drift = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_extra = models.JSONField(default=dict, blank=True)
    # Outbox marks: when the planning message (job queued) or the join message (every chunk done) was sent.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    join_dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_jobs"
    )

    class Meta:
        ordering = ["-created_at"]
        permissions = [("view_all_batch_jobs", "Can see every user's batch jobs")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error_code=""), name="batch_job_failure_has_error"
            ),
            models.CheckConstraint(
                condition=~Q(status="success") | ~Q(result_name=""), name="batch_job_success_has_result"
            ),
        ]

    def __str__(self) -> str:
        return f"Batch {self.pk} {self.model_name} v{self.model_version} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def progress(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        if not self.rows_total:
            return 0.0
        # The join is the last step: done rows count for at most 99 % until the result object exists.
        return min(0.99, (self.rows_done + self.rows_skipped) / self.rows_total)


class BatchChunk(models.Model):
    """One chunk of a batch job's input: a byte range of whole CSV records, or a range of Parquet row groups.

    Held by one execution at a time under a lease (``claim``, ``claimed_by``, ``heartbeat_at``) as training jobs
    are; a chunk whose execution is gone is queued again and redone whole: its part object is overwritten.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    # CSV: bytes [start, end) of the input; Parquet: row groups [start, end).
    start = models.PositiveBigIntegerField()
    end = models.PositiveBigIntegerField()
    # The input's data rows before this chunk (row numbers in errors count from 1 over the whole input).
    first_row = models.PositiveBigIntegerField()
    n_rows = models.PositiveBigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_skipped = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="batch_chunk_unique_index")]

    def __str__(self) -> str:
        return f"Batch {self.job_id} chunk {self.index} [{self.status}]"


class Trial(BaseModel):
    """A live trial of a model's ``@challenger`` against its ``@champion`` (``inference.trials``).

    ``shadow``: the champion answers and the challenger scores the same rows off the request path; ``canary``:
    ``share`` of the requests for ``@champion`` are answered by the challenger (sticky per routing key) and the
    champion scores them in the shadow. Feedback on those requests gives both versions' errors on the same rows;
    the evidence (``figures``) decides: ``auto`` promotes or rolls back by itself, ``manual`` waits for a maintainer.
    A model has at most one running trial; ended ones are its decision history.
    """

    class Mode(models.TextChoices):
        SHADOW = "shadow", "Shadow (the champion answers)"
        CANARY = "canary", "Canary (a share answered by the challenger)"

    class Policy(models.TextChoices):
        AUTO = "auto", "Decide automatically"
        MANUAL = "manual", "Report; a maintainer decides"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"
        STOPPED = "stopped", "Stopped"

    model_name = models.CharField(max_length=256, db_index=True)
    champion_version = models.PositiveIntegerField()
    challenger_version = models.PositiveIntegerField()
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.SHADOW)
    # Canary: the fraction of requests for @champion the challenger answers.
    share = models.FloatField(default=0.1)
    policy = models.CharField(max_length=8, choices=Policy.choices, default=Policy.AUTO)
    confidence = models.FloatField(default=0.95)
    min_paired_rows = models.PositiveIntegerField(default=200)
    # Canary guards: rolled back at once when the challenger's live MAE exceeds this factor times the champion's
    # (on at least ``guard_min_rows`` paired rows), or when its scorings fail more often than ``guard_error_rate``.
    guard_error_factor = models.FloatField(default=1.5)
    guard_error_rate = models.FloatField(default=0.05)
    guard_min_rows = models.PositiveIntegerField(default=36)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Scorings per version (answers and shadow scorings), and those that failed: the error rates.
    champion_scored = models.PositiveIntegerField(default=0)
    champion_failed = models.PositiveIntegerField(default=0)
    challenger_scored = models.PositiveIntegerField(default=0)
    challenger_failed = models.PositiveIntegerField(default=0)
    # The latest live comparison (``trials.evidence``), and when it was made.
    figures = models.JSONField(default=dict, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    # How it ended: why, by whom (null: by the trial's own policy), when, and the alias move it made.
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    alias_move = models.ForeignKey(
        "registry_mirror.AliasMove", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_name"], condition=Q(status="running"), name="trial_one_running_per_model"
            ),
            models.CheckConstraint(condition=Q(share__gte=0) & Q(share__lte=1), name="trial_share_fraction"),
            models.CheckConstraint(
                condition=Q(confidence__gt=0.5) & Q(confidence__lt=1), name="trial_confidence_range"
            ),
            models.CheckConstraint(
                condition=~Q(champion_version=models.F("challenger_version")), name="trial_two_versions"
            ),
            models.CheckConstraint(
                condition=Q(status="running") | Q(ended_at__isnull=False), name="trial_ended_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name}: v{self.challenger_version} vs v{self.champion_version} ({self.status})"
