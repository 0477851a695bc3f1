"""The mirror of MLflow's model registry kept for browsing in the Django admin, and what MDS serves.

The mirror (``RegisteredModel``, ``ModelVersion``) is rewritten by the sync service from MLflow and is only ever
shown. What is served is this service's own record, never MLflow's: ``ServedAlias`` (where each alias points,
changed only by the gated alias services) and ``TrainedVersion`` (the versions MDS trained or a maintainer
adopted, with the checksums of their files); ``AliasMove`` audits both MDS's moves and those seen in MLflow.

A mirrored version names the training job that produced it by the job's key (the ``mds.job_id`` tag) rather
than by a foreign key, so this app depends on no other app, neither in code nor in migrations, and versions
registered outside MDS mirror just as well.

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
    # Where MLflow's aliases point, as the sync saw them; what MDS serves is ``ServedAlias``.
    aliases = models.JSONField("MLflow aliases", default=list, blank=True)
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
        # Moved directly in MLflow to a version other than MDS's record: shown, never served until accepted.
        EXTERNAL = "external", "Made directly in MLflow (not served)"
        # A maintainer accepted a move made directly in MLflow, through the same gate as any other move.
        ACCEPTED = "accepted", "Accepted from MLflow"
        # The challenger alias given to a version trained by a retraining (never the serving alias).
        RETRAIN = "retrain", "Given to a retrained version"
        # A live trial's decision (serving's ``inference.trials``): promoted or rolled back by measured accuracy.
        TRIAL = "trial", "Decided by a live trial"

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
    """A version this service serves: one it trained, or one registered elsewhere that a maintainer adopted.

    The trust anchor of serving: only a version with a row here is served, and an artifact is loaded only if it
    hashes to what this row says, so whoever can write to MLflow (its tags included) can neither have a version
    of theirs served nor make this service unpickle a file of theirs. A trained version's row is keyed by the
    training job's key, since the checksums are known before MLflow numbers the version. An adopted version's
    pickle is never loaded (``sklearn_sha256`` stays empty): only its ONNX file, checked at adoption, serves.
    """

    class Origin(models.TextChoices):
        TRAINED = "trained", "Trained by MDS"
        ADOPTED = "adopted", "Registered in MLflow, adopted by a maintainer"

    # Empty for an adopted version, which no training job of ours produced.
    job_key = models.UUIDField(unique=True, null=True, blank=True)
    name = models.CharField(max_length=256)
    # Null until MLflow registered the version.
    version = models.PositiveIntegerField(null=True, blank=True)
    sklearn_sha256 = models.CharField(max_length=64, blank=True)
    onnx_sha256 = models.CharField(max_length=64)
    # The prediction intervals' calibration file; empty for a version trained before intervals existed.
    intervals_sha256 = models.CharField(max_length=64, blank=True, default="")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.TRAINED)
    adopted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="adopted_versions"
    )
    adopted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="trained_version_unique_name_version"),
            models.CheckConstraint(
                condition=Q(origin="adopted") | Q(job_key__isnull=False), name="trained_version_trained_has_job"
            ),
            # An adopted version is numbered, and its pickle is never trusted.
            models.CheckConstraint(
                condition=Q(origin="trained")
                | (Q(version__isnull=False) & Q(sklearn_sha256="") & Q(adopted_at__isnull=False)),
                name="trained_version_adopted_onnx_only",
            ),
        ]

    def __str__(self) -> str:
        if self.origin == self.Origin.ADOPTED:
            return f"{self.name} v{self.version} (adopted)"
        return f"{self.name} v{self.version or '?'} (job {self.job_key})"


class ServedAlias(BaseModel):
    """Where an alias of a model points for serving: MDS's promotion record, not MLflow's.

    Written only by the gated alias services (``services.aliases``), which also set the alias in MLflow so its UI
    shows it; an alias moved directly in MLflow changes nothing here (the sync records it as *external*).
    """

    model_name = models.CharField(max_length=256)
    alias = models.CharField(max_length=256)
    version = models.PositiveIntegerField()
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="served_aliases"
    )

    class Meta:
        ordering = ["model_name", "alias"]
        constraints = [
            models.UniqueConstraint(fields=["model_name", "alias"], name="served_alias_unique_model_alias"),
            models.CheckConstraint(condition=Q(version__gte=1), name="served_alias_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name}@{self.alias} -> v{self.version}"


class RetrainPolicy(BaseModel):
    """When a model is retrained on its dataset series without anyone asking (docs/retraining.md).

    A model-level setting kept here, beside the model's owner, so that serving (which measures live accuracy and
    drift) and training (which retrains) both read it without knowing each other: serving emits
    ``accuracy.degraded`` when a version's live MAE passes ``degradation_factor`` times its holdout MAE, and
    training's receivers start the retraining.
    """

    model_name = models.CharField(max_length=256, unique=True)
    enabled = models.BooleanField(default=False)
    # A trailing window by timestamp ("365d", "90d", "48h"); empty: the whole series.
    window = models.CharField(max_length=16, blank=True)
    # Retrain every this long ("6h", "7d"; beat checks every MDS_RETRAIN_SCHEDULE_INTERVAL); empty: no schedule.
    schedule = models.CharField(max_length=16, blank=True)
    on_new_data = models.BooleanField(default=False)
    on_drift = models.BooleanField(default=False)
    # Retrain when the champion's live MAE exceeds this many times its holdout MAE; null: never.
    degradation_factor = models.FloatField(null=True, blank=True)
    # Rows with actuals the live MAE needs before it is compared.
    degradation_min_rows = models.PositiveIntegerField(default=30)
    # When the schedule last started a retraining (or was set): the next one is due `schedule` later.
    last_scheduled_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="retrain_policies"
    )

    class Meta:
        ordering = ["model_name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(degradation_factor__isnull=True) | Q(degradation_factor__gt=1.0),
                name="retrain_policy_degradation_factor_above_one",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} retraining ({'on' if self.enabled else 'off'})"
