"""From a raw table to time-ordered features and target, and the chronological splits of them. No Django."""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from core.calendar import CALENDAR_FEATURES, calendar_matrix
from core.errors import quoted
from core.tabular import TableError, feature_matrix, require_columns, row_number

# Fewer rows than this cannot give both a training set and a holdout worth a metric.
MIN_ROWS = 10
MIN_HOLDOUT_ROWS = 2


@dataclass
class PreparedData:
    """Features, target and timestamps of the usable rows, in time order."""

    X: np.ndarray
    y: np.ndarray
    timestamps: pd.Series
    feature_names: list[str]
    dropped_missing_target: int = 0
    # The timestamp column the calendar features were derived from (``with_calendar``), or ``None``.
    calendar_from: str | None = None


def prepare_data(frame: pd.DataFrame, *, target: str, timestamp: str, calendar: bool = False) -> PreparedData:
    """Check a raw table and turn it into time-ordered float32 features and a float64 target; with ``calendar``,
    the timestamp's calendar features (``core.calendar``) follow the table's own.

    Raises:
        TableError: naming the missing column, the bad cell, or why there are too few rows.
    """
    require_columns(frame.columns, [timestamp, target])
    feature_names = [column for column in frame.columns if column not in (timestamp, target)]
    if calendar:
        calendar_clash_check(feature_names)
    elif not feature_names:
        raise TableError(
            f"No feature column: the file has only {quoted(timestamp)} and {quoted(target)}.", code="no_features"
        )
    target_values = pd.to_numeric(frame[target], errors="coerce")
    given = frame[target].notna() & (frame[target].astype(str).str.strip() != "")
    infinite = np.isinf(target_values.to_numpy(dtype="float64", na_value=np.nan))
    bad_target = (target_values.isna() & given) | infinite
    if bad_target.any():
        position = int(np.flatnonzero(bad_target.to_numpy())[0])
        row, cell = row_number(frame, position), frame[target].iloc[position]
        raise TableError(
            f"Column {quoted(target)}, row {row}: {quoted(cell)} is not a finite number.",
            code="bad_cell",
            extra={"column": target, "row": row},
        )
    has_target = target_values.notna().to_numpy()
    dropped = int((~has_target).sum())
    frame = frame.loc[has_target]
    target_values = target_values[has_target]

    timestamps = pd.to_datetime(frame[timestamp], errors="coerce", format="mixed", utc=True)
    if timestamps.isna().any():
        position = int(np.flatnonzero(timestamps.isna().to_numpy())[0])
        row = row_number(frame, position)
        raise TableError(
            f"Column {quoted(timestamp)}, row {row}: {quoted(frame[timestamp].iloc[position])} is not a date or time.",
            code="bad_timestamp",
            extra={"column": timestamp, "row": row},
        )
    X = feature_matrix(frame, feature_names)
    if len(frame) < MIN_ROWS:
        raise TableError(
            f"Too few rows with a {quoted(target)} value: {len(frame)}; at least {MIN_ROWS} are needed.",
            code="too_few_rows",
            extra={"rows": len(frame), "min_rows": MIN_ROWS, "dropped_missing_target": dropped},
        )
    order = np.argsort(timestamps.to_numpy(), kind="stable")
    data = PreparedData(
        X=X[order],
        y=target_values.to_numpy(dtype="float64")[order],
        timestamps=timestamps.iloc[order].reset_index(drop=True),
        feature_names=feature_names,
        dropped_missing_target=dropped,
    )
    return with_calendar(data, timestamp) if calendar else data


def calendar_clash_check(feature_names: list[str]) -> None:
    """Raise ``calendar_column_clash`` if the file's own columns take a calendar feature's name."""
    clashing = [name for name in feature_names if name in CALENDAR_FEATURES]
    if clashing:
        raise TableError(
            f"calendar=true derives the columns {', '.join(CALENDAR_FEATURES)}; the file already has "
            f"{', '.join(quoted(name) for name in clashing)}: rename them or leave calendar out.",
            code="calendar_column_clash",
            extra={"columns": clashing},
        )


def with_calendar(data: PreparedData, timestamp: str) -> PreparedData:
    """``data`` with the calendar features of its timestamps (``core.calendar``) after its own features."""
    calendar_clash_check(data.feature_names)
    return replace(
        data,
        X=np.ascontiguousarray(np.hstack([data.X, calendar_matrix(data.timestamps)]), dtype=np.float32),
        feature_names=[*data.feature_names, *CALENDAR_FEATURES],
        calendar_from=timestamp,
    )


def without_calendar(data: PreparedData) -> PreparedData:
    """``data`` without the calendar features ``with_calendar`` appended: the table's own features only."""
    if data.calendar_from is None:
        return data
    own = len(data.feature_names) - len(CALENDAR_FEATURES)
    return replace(
        data,
        X=np.ascontiguousarray(data.X[:, :own]),
        feature_names=data.feature_names[:own],
        calendar_from=None,
    )


def chronological_split(n_samples: int, test_size: float) -> int:
    """Index of the first holdout row: the last ``test_size`` share of time-ordered rows is held out."""
    n_test = max(MIN_HOLDOUT_ROWS, int(round(n_samples * test_size)))
    if n_samples - n_test < MIN_HOLDOUT_ROWS:
        raise TableError(
            f"test_size={test_size} leaves too few training rows out of {n_samples}.", code="too_few_rows"
        )
    return n_samples - n_test


def calibration_split(n_window: int, calibration_size: float) -> int:
    """Index of the first calibration row: the newest ``calibration_size`` share of the training window."""
    n_calibration = max(1, int(round(n_window * calibration_size)))
    if n_window - n_calibration < MIN_HOLDOUT_ROWS:
        raise TableError(
            f"calibration_size={calibration_size} leaves too few rows to fit the forest on out of {n_window}.",
            code="too_few_rows",
        )
    return n_window - n_calibration
