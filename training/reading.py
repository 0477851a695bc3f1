"""Reading a stored training CSV into ``ml.PreparedData`` in little memory, with the checks of
``ml.prepare_data``. Pure: no Django.

The parser writes features as float32 and the target as float64 straight into their arrays, each column is
dropped from the frame once copied into the feature matrix, and ISO 8601 timestamps take pandas' vectorised
path. The fast read only looks for trouble; when it sees any, the file is read again in chunks through the very
checks of ``ml.prepare_data`` (the ones the upload's first rows passed), so the error names the same code,
column and row as a refusal at upload would.
"""

import warnings
from typing import IO

import numpy as np
import pandas as pd

from core.tabular import TableError, file_header

from . import ml

# Rows per block when a problem is looked for: bounded memory, few blocks.
LOCATE_CHUNK_ROWS = 100_000


def training_data_read(
    source: IO[bytes], *, target: str, timestamp: str, max_columns: int | None = None
) -> ml.PreparedData:
    """The usable rows of the seekable binary CSV ``source``, time-ordered, as ``ml.prepare_data`` makes them.

    Raises:
        TableError: as ``ml.prepare_data`` would on the whole file; a bad cell is named by column and row.
    """
    header = file_header(source, max_columns=max_columns)
    # Missing columns or no feature: the same message as the checks, from an empty frame of that header.
    _raise_unless_too_few(lambda: ml.prepare_data(pd.DataFrame(columns=header), target=target, timestamp=timestamp))
    features = [name for name in header if name not in (timestamp, target)]
    parts = _read_parts(source, header, features, target=target, timestamp=timestamp, typed=True)
    if parts is None:
        problem = _first_problem(source, header, target=target, timestamp=timestamp)
        if problem is not None:
            raise problem
        # No check fails: the text sits where numbers go only in rows without a target, which are dropped.
        parts = _read_parts(source, header, features, target=target, timestamp=timestamp, typed=False)
        if parts is None:
            raise TableError("The file could not be read as numbers where the model needs them.", code="not_csv")
    kept = sum(len(part) for part in parts[target])
    if kept < ml.MIN_ROWS:
        # Too few rows: the checks themselves say so, in their words.
        blocks = [*_blocks(source, header)] or [pd.DataFrame(columns=header)]
        ml.prepare_data(pd.concat(blocks), target=target, timestamp=timestamp)
    X = np.empty((kept, len(features)), dtype=np.float32)
    for index, name in enumerate(features):
        np.concatenate(parts.pop(name), out=X[:, index])
    y = np.concatenate(parts.pop(target))
    moments = np.concatenate(parts.pop(timestamp))
    if len(moments) > 1 and not (moments[1:] >= moments[:-1]).all():
        order = np.argsort(moments, kind="stable")
        X, y, moments = X[order], y[order], moments[order]
    return ml.PreparedData(
        X=X,
        y=y,
        timestamps=pd.Series(pd.DatetimeIndex(moments, tz="UTC")),
        feature_names=features,
        dropped_missing_target=sum(parts.pop(_DROPPED)),
    )


def _read_parts(
    source: IO[bytes], header: list[str], features: list[str], *, target: str, timestamp: str, typed: bool
) -> dict[str, list] | None:
    """Each column's blocks, rows without a target left out, or ``None`` at the first cell that fails a check.

    ``typed``: the parser writes features as float32 and the target as float64 (any text there is a failure);
    otherwise columns are converted after parsing, as the checks convert them. Timestamps are parsed per block,
    so their text never lives for the whole file at once.
    """
    dtype = {**dict.fromkeys(features, "float32"), target: "float64"} if typed else None
    parts: dict[str, list] = {name: [] for name in [timestamp, target, *features, _DROPPED]}
    try:
        for block in _blocks(source, header, dtype=dtype, chunksize=READ_CHUNK_ROWS):
            if not _block_take(block, parts, target=target, timestamp=timestamp):
                return None
    except TableError:
        return None
    return parts


# Rows parsed at a time: large enough that per-block costs vanish, small enough that a block is a few MB.
READ_CHUNK_ROWS = 200_000
_DROPPED = "\0dropped"


def _block_take(block: pd.DataFrame, parts: dict[str, list], *, target: str, timestamp: str) -> bool:
    """Append ``block``'s rows that have a target to ``parts``; ``False`` if one of its cells fails a check."""
    y = _numbers(block.pop(target), "float64")
    if np.isinf(y).any():
        return False
    keep = ~np.isnan(y)
    everything = bool(keep.all())
    parts[_DROPPED].append(int((~keep).sum()))
    raw = block.pop(timestamp)
    moments = pd.to_datetime(raw if everything else raw[keep], errors="coerce", format="mixed", utc=True)
    if moments.isna().any():
        return False
    parts[timestamp].append(moments.dt.tz_convert(None).to_numpy())
    parts[target].append(y if everything else y[keep])
    for name in block.columns:
        values = _numbers(block[name], "float32")
        values = values if everything else values[keep]
        if not np.isfinite(values).all():
            return False
        parts[name].append(values)
    return True


def _numbers(column: pd.Series, dtype: str) -> np.ndarray:
    if column.dtype == dtype:
        return column.to_numpy()
    with np.errstate(over="ignore"):
        # As the checks convert: text becomes NaN (an error where a value is needed), 1e39 inf in float32.
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=dtype, na_value=np.nan)


def _blocks(source: IO[bytes], header: list[str], dtype: dict | None = None, chunksize: int | None = None):
    """``source``'s rows in frames of ``chunksize``, parsed as the upload's checks parse them."""
    source.seek(0)
    try:
        reader = pd.read_csv(
            source,
            encoding="utf-8-sig",
            header=0,
            names=header,
            skipinitialspace=True,
            index_col=False,
            dtype=dtype,
            chunksize=chunksize or LOCATE_CHUNK_ROWS,
        )
        with reader:
            while True:
                # Around each block only: the warning filters are the process's, not this generator's.
                with warnings.catch_warnings():
                    # A data row longer than the header would silently lose cells: an error, as at upload.
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    # 1e39 cast to float32 is inf, which the checks refuse by name: no warning needed.
                    warnings.simplefilter("ignore", RuntimeWarning)
                    block = next(reader, None)
                if block is None:
                    return
                yield block
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, ValueError) as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc


def _first_problem(source: IO[bytes], header: list[str], *, target: str, timestamp: str) -> TableError | None:
    """The first block's error from ``ml.prepare_data``, block by block over the file (row numbers count from
    the file's first data row)."""
    try:
        for block in _blocks(source, header):
            try:
                ml.prepare_data(block, target=target, timestamp=timestamp)
            except TableError as exc:
                # A block may hold fewer rows than a training needs; the whole file does not.
                if exc.code != "too_few_rows":
                    return exc
    except TableError as exc:
        return exc
    return None


def _raise_unless_too_few(check) -> None:
    try:
        check()
    except TableError as exc:
        if exc.code != "too_few_rows":
            raise
