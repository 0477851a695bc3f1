"""Reading and joining the CSV segments of a dataset series, a block of rows at a time. Pure: no Django.

``segment_scan`` checks a segment as a training checks its file (``ml.prepare_data``'s checks, so errors name
the same code, column and row) and against the series: the same columns, no row older than the series' end.
``segments_join`` streams a trailing window of the segments into one CSV, in the series' column order, and says
which rows of which segment it took (the lineage of the version trained on it).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import numpy as np
import pandas as pd

from core.errors import quoted
from core.tabular import TableError, file_header

from . import ml
from .reading import _blocks


@dataclass
class SegmentScan:
    """What a segment holds: its columns in training order, its rows with a target and their time span."""

    columns: list[str]
    n_rows: int
    first_timestamp: datetime | None
    last_timestamp: datetime | None


def segment_scan(
    source: IO[bytes],
    *,
    target: str,
    timestamp: str,
    columns: list[str] | None = None,
    not_before: datetime | None = None,
    max_columns: int | None = None,
) -> SegmentScan:
    """Check the whole seekable CSV ``source`` as a segment of a series with ``columns`` (``None``: the first).

    Raises:
        TableError: ``column_mismatch`` naming the first column missing or extra (``extra.column``, and the lists
            ``missing``/``unexpected``); ``rows_before_series_end`` naming the first row (``extra.row``) older than
            ``not_before``; ``no_rows`` without a row with a target; and the checks of ``ml.prepare_data``.
    """
    header = file_header(source, max_columns=max_columns)
    if columns is not None:
        _columns_check(header, columns)
    n_rows, first, last = 0, None, None
    for block in _blocks(source, header):
        try:
            ml.prepare_data(block, target=target, timestamp=timestamp)
        except TableError as exc:
            # The row count is checked last: a short block passed every cell check (a segment may be short).
            if exc.code != "too_few_rows":
                raise
        moments = _moments(block, target=target, timestamp=timestamp)
        if moments.empty:
            continue
        if not_before is not None:
            older = (moments < pd.Timestamp(not_before)).to_numpy()
            if older.any():
                position = int(np.flatnonzero(older)[0])
                row = int(moments.index[position]) + 1
                raise TableError(
                    f"Column {quoted(timestamp)}, row {row}: {moments.iloc[position].isoformat()} is older than the "
                    f"series' last row ({pd.Timestamp(not_before).isoformat()}); a segment continues the series in "
                    "time (older rows belong in a new training, not an append).",
                    code="rows_before_series_end",
                    extra={"column": timestamp, "row": row, "series_end": pd.Timestamp(not_before).isoformat()},
                )
        n_rows += len(moments)
        low, high = moments.min(), moments.max()
        first = low if first is None or low < first else first
        last = high if last is None or high > last else last
    if n_rows == 0:
        raise TableError(f"The file has no row with a {quoted(target)} value.", code="no_rows", extra={"rows": 0})
    features = [name for name in header if name not in (timestamp, target)]
    return SegmentScan(
        columns=[timestamp, *features, target],
        n_rows=n_rows,
        first_timestamp=first.to_pydatetime() if first is not None else None,
        last_timestamp=last.to_pydatetime() if last is not None else None,
    )


def _columns_check(header: list[str], columns: list[str]) -> None:
    missing = [name for name in columns if name not in header]
    unexpected = [name for name in header if name not in columns]
    if not missing and not unexpected:
        return
    column = (missing or unexpected)[0]
    what = "lacks the series' column" if missing else "has a column the series does not have:"
    raise TableError(
        f"The file {what} {quoted(column)}; a segment has the series' columns ({', '.join(columns)}), in any order.",
        code="column_mismatch",
        extra={"column": column, "missing": missing, "unexpected": unexpected, "columns": columns},
    )


def _moments(block: pd.DataFrame, *, target: str, timestamp: str) -> pd.Series:
    """The UTC timestamps of ``block``'s rows with a target, indexed by the rows' 0-based positions in the file."""
    values = pd.to_numeric(block[target], errors="coerce")
    kept = block.loc[values.notna().to_numpy(), timestamp]
    return pd.to_datetime(kept, errors="coerce", format="mixed", utc=True)


@dataclass
class JoinedSegment:
    """The rows of one segment a join took: how many, which file rows (1-based data rows, first and last taken),
    their time span, and where they sit in the joined file."""

    dataset: int
    n_rows: int
    row_first: int | None
    row_last: int | None
    first_timestamp: str | None
    last_timestamp: str | None
    joined_row_first: int | None
    joined_row_last: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Join:
    n_rows: int = 0
    segments: list[JoinedSegment] = field(default_factory=list)


def segments_join(
    segments: Sequence[tuple[int, IO[bytes]]],
    out: IO[bytes],
    *,
    columns: list[str],
    target: str,
    timestamp: str,
    after: datetime | None = None,
) -> Join:
    """Write the rows of ``segments`` (dataset id, seekable CSV) with a target and a timestamp after ``after``
    (``None``: all) to ``out`` as one CSV with the header ``columns``; cells are copied as text, unchanged."""
    join = Join()
    wrote_header = False
    cutoff = pd.Timestamp(after) if after is not None else None
    for dataset_id, source in segments:
        header = file_header(source)
        taken = JoinedSegment(dataset_id, 0, None, None, None, None, None, None)
        first = last = None
        for block in _blocks(source, header, dtype=dict.fromkeys(header, str)):
            moments = _moments(block, target=target, timestamp=timestamp).dropna()
            if cutoff is not None:
                moments = moments[moments > cutoff]
            if moments.empty:
                continue
            rows = block.loc[moments.index, columns]
            out.write(rows.to_csv(header=not wrote_header, index=False, lineterminator="\n").encode("utf-8"))
            wrote_header = True
            positions = moments.index.to_numpy()
            taken.row_first = int(positions.min()) + 1 if taken.row_first is None else taken.row_first
            taken.row_last = int(positions.max()) + 1
            low, high = moments.min(), moments.max()
            first = low if first is None or low < first else first
            last = high if last is None or high > last else last
            if taken.joined_row_first is None:
                taken.joined_row_first = join.n_rows + 1
            taken.n_rows += len(rows)
            join.n_rows += len(rows)
        if taken.n_rows:
            taken.joined_row_last = join.n_rows
            taken.first_timestamp = first.isoformat() if first is not None else None
            taken.last_timestamp = last.isoformat() if last is not None else None
        join.segments.append(taken)
    if not wrote_header:
        out.write(pd.DataFrame(columns=columns).to_csv(index=False, lineterminator="\n").encode("utf-8"))
    return join
