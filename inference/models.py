"""What serving remembers: each prediction answered (and the actuals fed back for it), and daily monitoring reports.

The log belongs to this app: training never reads it, and the registry mirror is only read (for the holdout's
metrics to compare with). Rows are written off the request path, in batches (``inference.prediction_log``), and
deleted after ``MDS_PREDICTION_LOG_DAYS`` days; the daily reports keep the summaries for longer.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import BaseModel


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
