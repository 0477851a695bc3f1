"""The mirror of MLflow's model registry kept for browsing in the Django admin.

MLflow stays the source of truth: the mirror is rewritten by the sync service and only the alias audit records
something MLflow does not keep. A mirrored version names the training job that produced it by the job's key
(the ``mds.job_id`` tag) rather than by a foreign key, so this app depends on no other app, neither in code nor
in migrations, and versions registered outside MDS mirror just as well.

Two fields of a registered model are MDS's own, never MLflow's, and the sync leaves them alone: its ``owner``
and the groups it is ``shared_with``, which decide who may train new versions of it.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import BaseModel


class RegisteredModel(BaseModel):
    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    # alias -> version number, as MLflow keeps them on the registered model.
    aliases = models.JSONField(default=dict, blank=True)
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The trainer whose first training of this name started (or whom a maintainer made owner); null for a model
    # nobody owns yet (trained before owners existed, or its owner's account is gone): only maintainers train it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_models"
    )
    # Members of these groups may train new versions as the owner may; set by maintainers.
    shared_with = models.ManyToManyField("auth.Group", blank=True, related_name="shared_models")

    class Meta:
        ordering = ["name"]
        permissions = [
            ("sync_mirror", "Can sync the registry mirror from MLflow"),
            ("train_any_model", "Can train new versions of every model, whoever owns it"),
            ("share_model", "Can set a model's owner and the groups it is shared with"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(BaseModel):
    class Status(models.TextChoices):
        READY = "READY", "Ready"
        PENDING_REGISTRATION = "PENDING_REGISTRATION", "Pending registration"
        FAILED_REGISTRATION = "FAILED_REGISTRATION", "Failed registration"

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    # Denormalised from the registered model so (name, version) is one unique, indexed key, as in MLflow.
    name = models.CharField(max_length=256)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.READY, db_index=True)
    description = models.TextField(blank=True)
    run_id = models.CharField(max_length=64, blank=True, db_index=True)
    experiment_id = models.CharField(max_length=64, blank=True)
    model_id = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=1000, blank=True)
    formats = models.JSONField(default=list, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    r2 = models.FloatField(null=True, blank=True)
    mae = models.FloatField(null=True, blank=True)
    rmse = models.FloatField(null=True, blank=True)
    onnx_max_abs_diff = models.FloatField(null=True, blank=True)
    onnx_max_rel_diff = models.FloatField(null=True, blank=True)
    dataset_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    # TrainingJob.key of the job that registered this version (its `mds.job_id` tag); empty for outside versions.
    job_key = models.UUIDField(null=True, blank=True, db_index=True)
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique_name_version"),
            models.CheckConstraint(condition=Q(version__gte=1), name="model_version_number_positive"),
        ]
        indexes = [models.Index(fields=["-mlflow_created_at"], name="model_version_mlflow_created")]
        permissions = [
            ("set_alias", "Can set, move or remove a model alias in MLflow"),
            ("predict", "Can get predictions from registered model versions"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class AliasMove(BaseModel):
    """One change of where an alias points; ``created_at`` is when it happened (or was first seen)."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Set in the admin"
        API = "api", "Set through the API"
        # The serving alias given to a new model's first version by the training that registered it.
        FIRST_VERSION = "first_version", "Given to a new model's first version"
        SYNC = "sync", "Seen in MLflow by a sync"

    model_name = models.CharField(max_length=256, db_index=True)
    alias = models.CharField(max_length=256)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    # Moved past the promotion gate (a candidate whose holdout RMSE is worse than the current holder's).
    forced = models.BooleanField(default=False)
    moved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="alias_moves"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(from_version__isnull=False) | Q(to_version__isnull=False),
                name="alias_move_has_a_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name}@{self.alias}: {self.from_version or '-'} -> {self.to_version or '-'}"


class TrainedVersion(BaseModel):
    """A version this service trained, with the sha256 of its artifacts, recorded here before they went to MLflow.

    The trust anchor of serving: an artifact is loaded only if it hashes to what this row says, so whoever can
    write to MLflow (its tags included) cannot make this service unpickle a file of theirs, and a version this
    service did not train is never unpickled at all. Keyed by the training job's key, since the checksums are
    known before MLflow numbers the version.
    """

    job_key = models.UUIDField(unique=True)
    name = models.CharField(max_length=256)
    # Null until MLflow registered the version.
    version = models.PositiveIntegerField(null=True, blank=True)
    sklearn_sha256 = models.CharField(max_length=64)
    onnx_sha256 = models.CharField(max_length=64)
    # The prediction intervals' calibration file; empty for a version trained before intervals existed.
    intervals_sha256 = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="trained_version_unique_name_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version or '?'} (job {self.job_key})"
