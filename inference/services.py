"""Predictions from a registered version: pick the version, the engine, check the input, predict."""

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from core.errors import UntrustedArtifact
from core.tabular import TableError

from .model_cache import LoadedVersion, model_cache, prediction_threads
from .parsing import Table, features, parse_csv, parse_json

FORMATS = ("onnx", "sklearn", "auto")


@dataclass(frozen=True)
class Prediction:
    values: np.ndarray
    name: str
    version: int
    model_format: str
    table: Table
    # The float32 matrix the model saw, and its columns: what the prediction log keeps.
    features: np.ndarray | None = None
    feature_names: list[str] | None = None


def prediction_create(
    *, model_name: str, version: str, model_format: str, body: bytes, body_format: str
) -> Prediction:
    """Predict one value per input row with ``model_name`` at ``version`` (a number, ``latest``, an alias).

    ``body`` is CSV or, with ``body_format="json"``, MLflow's scoring JSON; the version's signature names the
    feature columns, and other columns are ignored.

    ``auto`` picks the faster engine for the batch: ONNX, or sklearn for large batches and for versions whose
    recorded ONNX parity is outside ``MDS_AUTO_MAX_REL_DIFF``, but never a pickle that is not trusted.

    Raises:
        NotFound: no such model, version or alias.
        TableError: the input lacks a feature column, holds an empty or non-numeric cell, or has more than
            ``MDS_MAX_COLUMNS`` columns (checked before any per-column work).
        TooLarge: past ``MDS_PREDICT_MAX_ROWS`` rows.
        UntrustedArtifact: ``format=sklearn`` for a version whose pickle this service did not record, or whose
            artifact does not match the record.
    """
    cache = model_cache()
    loaded = cache.get(model_name, cache.resolve(model_name, version))
    limits = {"max_rows": settings.MDS_PREDICT_MAX_ROWS, "max_columns": settings.MDS_MAX_COLUMNS}
    if body_format == "json":
        table = parse_json(body, columns=loaded.feature_names, **limits)
    else:
        table = parse_csv(body, **limits)
    if len(table) == 0:
        raise TableError("There are no rows to predict.", code="empty_file")
    X = features(table, loaded.feature_names)
    engine = _engine(loaded, model_format, len(X))
    if engine == "sklearn" and model_format == "auto":
        try:
            loaded.sklearn_model()
        except UntrustedArtifact:
            engine = "onnx"
    threads = prediction_threads()
    values = loaded.predict_sklearn(X, threads) if engine == "sklearn" else loaded.predict_onnx(X, threads)
    return Prediction(
        values=np.asarray(values, dtype=np.float64),
        name=model_name,
        version=loaded.version,
        model_format=engine,
        table=table,
        features=X,
        feature_names=loaded.feature_names,
    )


def _engine(loaded: LoadedVersion, model_format: str, n_rows: int) -> str:
    if model_format != "auto":
        return model_format
    if not loaded.sklearn_trusted:
        return "onnx"
    if not loaded.parity_within(settings.MDS_AUTO_MAX_REL_DIFF):
        return "sklearn"
    return "sklearn" if n_rows >= settings.MDS_AUTO_SKLEARN_MIN_ROWS else "onnx"


def model_cache_status() -> dict:
    """What ``/health/ready`` reports: the versions this process holds and the aliases it knows."""
    cache = model_cache()
    return {
        "status": "ready",
        "loaded": [
            {
                "name": entry.name,
                "version": entry.version,
                "formats": ["onnx", "sklearn"] if entry.sklearn_loaded else ["onnx"],
                "bytes": entry.nbytes,
            }
            for entry in cache.loaded()
        ],
        "aliases": cache.aliases(),
        "limits": {"max_entries": cache.max_entries, "max_bytes": cache.max_bytes},
    }
