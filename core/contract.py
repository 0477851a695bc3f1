"""Names the apps agree on without importing each other: MLflow tags and files, plots, parity metrics, names.

Training writes these into MLflow, the registry mirror and the inference cache read them back; keeping them in
one place is what keeps the writers and the readers in step.
"""

# Tags written on the run, the logged model and the registered version.
JOB_TAG = "mds.job_id"  # the training job's key: makes registration idempotent per job
DATASET_SHA256_TAG = "mds.dataset_sha256"
SKLEARN_SHA256_TAG = "mds.sklearn_sha256"
ONNX_SHA256_TAG = "mds.onnx_sha256"
INTERVALS_SHA256_TAG = "mds.intervals_sha256"

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
FILE_SHA256_TAGS = {ONNX_FILE: ONNX_SHA256_TAG, SKLEARN_FILE: SKLEARN_SHA256_TAG, INTERVALS_FILE: INTERVALS_SHA256_TAG}

# Run metrics that say how far the ONNX predictions stray from sklearn's (training/ml.py parity_metrics).
PARITY_METRICS = ("onnx_max_abs_diff", "onnx_max_rel_diff")

# Run tag naming the interval method training chose (core.intervals.METHODS).
INTERVAL_METHOD_TAG = "mds.interval_method"

# Training plots: logged as ``plots/<name>.png`` on the run, shown on a version's admin page.
PLOT_DIR = "plots"
PLOTS = {
    "predicted_vs_actual": "Holdout: predicted vs actual",
    "feature_importances": "Feature importances",
    "residuals_over_time": "Holdout: residuals over time",
}


def plot_path(name: str) -> str:
    return f"{PLOT_DIR}/{name}.png"


# Registered model names (MLflow allows more; these are safe in URLs, file names and filter strings).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"
ALIAS_PATTERN = r"^@?[A-Za-z][A-Za-z0-9_\-]{0,199}$"
# A version reference: a number, `latest` or an alias.
VERSION_PATTERN = r"^([0-9]{1,9}|latest|@?[A-Za-z][A-Za-z0-9_\-]{0,199})$"
