"""Names the apps agree on without importing each other: MLflow tags and files, plots, parity metrics, names.

Training writes these into MLflow, the registry mirror and the inference cache read them back; keeping them in
one place is what keeps the writers and the readers in step.
"""

import re
from dataclasses import dataclass

from core.errors import QUOTE_MAX_CHARS, ApplicationError, quoted

# Tags written on the run, the logged model and the registered version.
JOB_TAG = "mds.job_id"  # the training job's key: makes registration idempotent per job
DATASET_SHA256_TAG = "mds.dataset_sha256"
SKLEARN_SHA256_TAG = "mds.sklearn_sha256"
ONNX_SHA256_TAG = "mds.onnx_sha256"
INTERVALS_SHA256_TAG = "mds.intervals_sha256"
CALENDAR_SHA256_TAG = "mds.calendar_sha256"

# Files of a logged model's directory.
ONNX_FILE = "model.onnx"
SKLEARN_FILE = "model.pkl"
# The training window's reference profile of each feature (training/profile.py), read back to measure drift.
PROFILE_FILE = "feature_profile.json"
PROFILE_FORMAT = 1  # the ``format`` field of that file; bumped if its layout ever changes
# The calibration of the prediction intervals (core.intervals.Calibration as JSON); versions trained before
# intervals existed do not have it.
INTERVALS_FILE = "intervals.json"
# The tag that records each file's sha256 on the logged model and the version; its presence also says that the
# version has the file.
# A version trained with calendar=true: the timestamp column its calendar features come from (core.calendar), as
# ``{"format": 1, "timestamp": NAME, "features": [...]}``; serving derives them from that column of each request.
CALENDAR_FILE = "calendar.json"
FILE_SHA256_TAGS = {
    ONNX_FILE: ONNX_SHA256_TAG,
    SKLEARN_FILE: SKLEARN_SHA256_TAG,
    INTERVALS_FILE: INTERVALS_SHA256_TAG,
    CALENDAR_FILE: CALENDAR_SHA256_TAG,
}

# Run metrics that say how far the ONNX predictions stray from sklearn's (training/ml.py parity_metrics).
PARITY_METRICS = ("onnx_max_abs_diff", "onnx_max_rel_diff")

# Run tag naming the interval method training chose (core.intervals.METHODS).
INTERVAL_METHOD_TAG = "mds.interval_method"
# Run tags naming the estimator served (training.ml.params.ESTIMATORS) and, if any, the calendar's timestamp column.
ESTIMATOR_TAG = "mds.estimator"
CALENDAR_TAG = "mds.calendar_timestamp"
# Run and version tags of a retrained version: the rows of which datasets trained it (JSON, the job's `lineage`)
# and why the retraining started (training.models.TrainingJob.Trigger).
LINEAGE_TAG = "mds.lineage"
RETRAIN_TRIGGER_TAG = "mds.retrain_trigger"

# Training plots: ``plots/<name>.png`` in the logged model's directory (on the run for versions logged before),
# shown on a version's admin page and, through the run's output model, in the run's Artifacts tab of MLflow's UI.
PLOT_DIR = "plots"
PLOTS = {
    "predicted_vs_actual": "Holdout: predicted vs actual",
    "feature_importances": "Feature importances",
    "residuals_over_time": "Holdout: residuals over time",
    "backtest_error_by_fold": "Backtest: error by fold",
}


def plot_path(name: str) -> str:
    return f"{PLOT_DIR}/{name}.png"


# Registered model names (MLflow allows more; these are safe in URLs, file names and filter strings).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"
ALIAS_PATTERN = r"^@?[A-Za-z][A-Za-z0-9_\-]{0,199}$"
# A version reference: a number, `latest` or an alias.
VERSION_PATTERN = r"^([0-9]{1,9}|latest|@?[A-Za-z][A-Za-z0-9_\-]{0,199})$"


@dataclass(frozen=True)
class VersionRef:
    """A reference to a version of a model: a ``number``, an ``alias`` or, with neither, the latest version.

    Parsed once where it comes in (``VersionRef.parse``); everything after that branches on its fields, never on
    text. ``str()`` gives it back as text: ``7``, ``latest`` or ``@champion`` (an alias always with its ``@``, so
    the alias ``latest`` stays apart from the latest version).
    """

    number: int | None = None
    alias: str | None = None

    def __post_init__(self):
        if self.number is not None and self.alias is not None:
            raise ValueError("A version reference is a number or an alias, not both.")

    @classmethod
    def parse(cls, text: str) -> "VersionRef":
        """``7``, ``latest``, ``champion`` or ``@champion``; ``ApplicationError`` (400, ``invalid_version``) for
        anything else."""
        if not isinstance(text, str) or not re.fullmatch(VERSION_PATTERN, text):
            raise ApplicationError(
                f"{quoted(text)} is no version: give a number, `latest` or an alias such as `@champion`.",
                code="invalid_version",
                extra={"version": str(text)[:QUOTE_MAX_CHARS]},
            )
        if text.isdigit():
            return cls(number=int(text))
        if text == "latest":
            return cls()
        return cls(alias=text.removeprefix("@"))

    @property
    def is_latest(self) -> bool:
        return self.number is None and self.alias is None

    def __str__(self) -> str:
        if self.number is not None:
            return str(self.number)
        return "latest" if self.alias is None else f"@{self.alias}"
