"""Predictions from a registered version: pick the version, the engine, check the input, predict."""

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from core.contract import VersionRef
from core.errors import ApplicationError, TooLarge
from core.intervals import Calibration
from core.tabular import TableError

from .compiled_forest import walk_library
from .model_cache import LoadedVersion, model_cache, thread_share
from .parsing import Table, features, parse_csv, parse_json, too_many_rows

FORMATS = ("onnx", "sklearn", "auto")


@dataclass(frozen=True)
class Intervals:
    level: float
    method: str
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class Contributions:
    base: float
    features: list[str]
    values: np.ndarray  # rows x features


@dataclass(frozen=True)
class Prediction:
    values: np.ndarray
    name: str
    version: int
    model_format: str
    # The rows as parsed (what a CSV answer echoes); ``None`` when the caller gave a feature matrix.
    table: Table | None
    # The float32 matrix the model saw, and its columns: what the prediction log keeps.
    features: np.ndarray
    feature_names: list[str]
    intervals: Intervals | None = None
    contributions: Contributions | None = None


def prediction_create(
    *,
    model_name: str,
    version: VersionRef,
    model_format: str,
    body: bytes,
    body_format: str,
    interval: float | None = None,
    explain: bool = False,
) -> Prediction:
    """Predict one value per input row with ``model_name`` at ``version`` (a number, ``latest``, an alias).

    ``body`` is CSV or, with ``body_format="json"``, MLflow's scoring JSON; the version's signature names the
    feature columns, and other columns are ignored.

    ``auto`` (the default) picks the faster engine for the batch (``_engine``): ONNX, or sklearn for large
    batches once its model is loaded and for versions whose recorded ONNX parity is outside
    ``MDS_AUTO_MAX_REL_DIFF``, but never a pickle that is not trusted. It picks sklearn also when the answer needs
    the forest's trees anyway: ``explain``, or an ``interval`` of a version calibrated with the ``scaled`` method
    (an untrusted pickle then answers 409). ``Prediction.model_format`` names the engine that ran.

    ``interval`` (a level in (0, 1)) adds split-conformal prediction intervals (``core.intervals``); ``explain``
    adds each feature's contribution per row (``inference.forest``). Both engines give the same interval offsets.

    Raises:
        NotFound: no such model, version or alias.
        TableError: the input lacks a feature column, holds an empty or non-numeric cell, or has more than
            ``MDS_MAX_COLUMNS`` columns (checked before any per-column work).
        TooLarge: past ``MDS_PREDICT_MAX_ROWS`` rows, or ``MDS_EXPLAIN_MAX_ROWS`` with ``explain``.
        UntrustedArtifact: ``format=sklearn``, ``explain`` or a ``scaled`` interval for a version whose pickle this
            service did not record, or whose artifact does not match the record.
        ApplicationError: ``invalid_input`` for a level the version's calibration cannot answer;
            ``intervals_unavailable`` for a version without a usable calibration; ``unservable_model`` for
            ``explain`` of a model with no tree paths to explain with (neither a forest nor boosting).
    """
    loaded = loaded_version(model_name=model_name, version=version)
    limits = {"max_rows": settings.MDS_PREDICT_MAX_ROWS, "max_columns": settings.MDS_MAX_COLUMNS}
    if body_format == "json":
        table = parse_json(body, columns=loaded.feature_names, **limits)
    else:
        table = parse_csv(body, **limits)
    if len(table) == 0:
        raise TableError("There are no rows to predict.", code="empty_file")
    return prediction_from_features(
        loaded=loaded,
        X=features(table, loaded.feature_names, calendar_from=loaded.calendar_from),
        model_format=model_format,
        interval=interval,
        explain=explain,
        table=table,
    )


def loaded_version(*, model_name: str, version: VersionRef) -> LoadedVersion:
    """The version ``version`` stands for in MDS's promotion record, loaded (once per process) and held in memory.

    Raises:
        NotFound: no such model, version or alias.
        Conflict: ``version_not_adopted``, a number MDS neither trained nor adopted.
    """
    cache = model_cache()
    return cache.get(model_name, cache.resolve(model_name, version))


def prediction_from_features(
    *,
    loaded: LoadedVersion,
    X: np.ndarray,
    model_format: str,
    interval: float | None = None,
    explain: bool = False,
    table: Table | None = None,
) -> Prediction:
    """Predict one value per row of ``X``, a C-ordered float32 matrix of ``loaded.feature_names`` (in that order,
    finite values within float32's range): what every protocol reduces its input to, ``prediction_create``'s CSV
    and JSON as well as the Open Inference Protocol's tensors (``inference.v2``).

    ``table``, the rows as parsed, is kept on the answer for the CSV renderer. Options and errors as for
    ``prediction_create`` (past the parsing).
    """
    if len(X) > settings.MDS_PREDICT_MAX_ROWS:
        raise too_many_rows(len(X), settings.MDS_PREDICT_MAX_ROWS)
    if explain and len(X) > settings.MDS_EXPLAIN_MAX_ROWS:
        raise TooLarge(
            f"explain=true answers at most {settings.MDS_EXPLAIN_MAX_ROWS} rows; this request has {len(X)}.",
            extra={"rows": len(X), "max_rows": settings.MDS_EXPLAIN_MAX_ROWS},
        )
    calibration = _calibration(loaded, interval) if interval is not None else None
    needs_spread = calibration is not None and calibration.needs_spread
    needs_trees = explain or needs_spread
    engine = _engine(loaded, model_format, len(X), needs_trees=needs_trees)
    with thread_share().threads() as threads:
        values, spread = _predict(loaded, X, engine, threads, needs_spread=needs_spread)
        contributions = None
        if explain:
            base, contributed = loaded.contributions(X, threads)
            contributions = Contributions(base=base, features=loaded.feature_names, values=contributed)
    intervals = None
    if calibration is not None and interval is not None:
        half = calibration.half_width(interval, spread)
        intervals = Intervals(level=interval, method=calibration.method, lower=values - half, upper=values + half)
    return Prediction(
        values=values,
        name=loaded.name,
        version=loaded.version,
        model_format=engine,
        table=table,
        features=X,
        feature_names=loaded.feature_names,
        intervals=intervals,
        contributions=contributions,
    )


def _predict(
    loaded: LoadedVersion, X: np.ndarray, model_format: str, threads: int, *, needs_spread: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The predictions of the engine serving ``model_format`` and, if asked, the spread of the forest's trees'
    predictions, on ``threads``."""
    engine = loaded.engine(model_format)
    if not needs_spread:
        return np.asarray(engine.predict(X, threads), dtype=np.float64), None
    # The spread comes from the same trees whichever engine predicts, so both give the same interval offsets; the
    # forest's own engine gets both in one pass over the trees (the spread costs a few vector operations per tree).
    forest = loaded.forest()
    values, spread = forest.moments(X, threads)
    if engine is not forest:
        values = np.asarray(engine.predict(X, threads), dtype=np.float64)
    return values, spread


def _calibration(loaded: LoadedVersion, level: float) -> Calibration:
    """The version's calibration, once it is known to answer ``level`` (checked before any prediction runs)."""
    if loaded.calibration is None:
        raise ApplicationError(
            loaded.calibration_problem or f"Version {loaded.version} has no prediction intervals.",
            code="intervals_unavailable",
            extra={"model_name": loaded.name, "version": loaded.version},
        )
    loaded.calibration.quantile(level)
    return loaded.calibration


def _engine(loaded: LoadedVersion, model_format: str, n_rows: int, *, needs_trees: bool = False) -> str:
    """The engine for this request: the one asked for, else (``auto``) the faster one that may serve.

    Where the compiled forest walk is built (``inference.compiled_forest``), sklearn is the faster engine at every
    batch size once its model is loaded; elsewhere only from ``MDS_AUTO_SKLEARN_MIN_ROWS`` rows (sklearn's own
    walk pays ~15 ms per call). Until the pickle is loaded, ONNX serves while it loads in the background. A
    version whose ONNX parity is out of tolerance waits for sklearn; a pickle this service did not record, or
    that does not match its record, never serves.
    """
    if model_format != "auto":
        return model_format
    if needs_trees:
        return "sklearn"
    if not loaded.parity_within(settings.MDS_AUTO_MAX_REL_DIFF):
        return "sklearn" if loaded.pickle.usable() else "onnx"
    large = n_rows >= settings.MDS_AUTO_SKLEARN_MIN_ROWS
    if (large or walk_library() is not None) and loaded.pickle.ready():
        if large or loaded.pickle.compiled is not None:
            return "sklearn"
    return "onnx"


def model_cache_status() -> dict:
    """What ``/health/ready`` reports: the versions this process holds and the aliases it knows."""
    cache = model_cache()
    return {
        "status": "ready",
        "loaded": [
            {
                "name": entry.name,
                "version": entry.version,
                "formats": entry.formats_in_memory,
                "bytes": entry.nbytes,
            }
            for entry in cache.loaded()
        ],
        "aliases": cache.aliases(),
        "limits": {"max_entries": cache.max_entries, "max_bytes": cache.max_bytes},
    }
