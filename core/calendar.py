"""Calendar features of a timestamp, shared by training and serving so both derive the same values. Pure.

Each of hour of day, day of week, day of year and month becomes a sin/cos pair on its cycle: 23:00 sits next to
00:00 and December next to January, which a plain number (23 vs 0, 12 vs 1) would put furthest apart, and a tree
can cut any stretch of the cycle with two splits. Times are taken in UTC: a timestamp with an offset is converted,
one without is read as UTC (the way training parses the column).
"""

from typing import Any

import numpy as np
import pandas as pd

from core.errors import quoted
from core.tabular import TableError

# The derived columns, in the order they follow the file's own features.
CALENDAR_FEATURES = (
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
    "yearday_sin",
    "yearday_cos",
    "month_sin",
    "month_cos",
)


def parse_timestamps(values: Any, *, column: str) -> pd.Series:
    """``values`` (texts or datetimes) as UTC timestamps, the way training reads its timestamp column.

    Raises:
        TableError: ``bad_timestamp`` naming the first cell (1-based row) that is not a date or time.
    """
    timestamps = pd.to_datetime(pd.Series(values), errors="coerce", format="mixed", utc=True)
    if timestamps.isna().any():
        position = int(np.flatnonzero(timestamps.isna().to_numpy())[0])
        cell = pd.Series(values).iloc[position]
        raise TableError(
            f"Column {quoted(column)}, row {position + 1}: {quoted(cell)} is not a date or time.",
            code="bad_timestamp",
            extra={"column": column, "row": position + 1},
        )
    return timestamps


def calendar_matrix(timestamps: pd.Series) -> np.ndarray:
    """The ``CALENDAR_FEATURES`` of each of the UTC ``timestamps`` (rows x 8, float32)."""
    stamps = pd.DatetimeIndex(timestamps)
    hour = stamps.hour + stamps.minute / 60.0 + stamps.second / 3600.0
    yearday: np.ndarray = (stamps.day_of_year - 1) / np.where(stamps.is_leap_year, 366.0, 365.0)
    phases = [
        2 * np.pi * np.asarray(hour, dtype=np.float64) / 24.0,
        2 * np.pi * np.asarray(stamps.day_of_week, dtype=np.float64) / 7.0,
        2 * np.pi * np.asarray(yearday, dtype=np.float64),
        2 * np.pi * (np.asarray(stamps.month, dtype=np.float64) - 1) / 12.0,
    ]
    columns = []
    for phase in phases:
        columns += [np.sin(phase), np.cos(phase)]
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float32)
