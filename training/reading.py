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
    dtype = {**dict.fromkeys(features, "float32"), target: "float64"}
    # Each column's blocks, rows without a target left out; timestamps parsed per block, so their text never
    # lives for the whole file at once.
    parts: dict[str, list[np.ndarray]] = {name: [] for name in [timestamp, target, *features]}
    try:
        for block in _blocks(source, header, dtype=dtype, chunksize=READ_CHUNK_ROWS):
            if not _block_take(block, parts, target=target, timestamp=timestamp):
                raise TableError("A cell fails the checks.", code="bad_cell")
    except TableError:
        raise _first_problem(source, header, target=target, timestamp=timestamp) from None
    kept = sum(len(part) for part in parts[target])
    if kept < ml.MIN_ROWS:
        # Too few rows: the checks themselves say so, in their words.
        ml.prepare_data(pd.concat(_blocks(source, header)), target=target, timestamp=timestamp)
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


# Rows parsed at a time: large enough that per-block costs vanish, small enough that a block is a few MB.
READ_CHUNK_ROWS = 200_000
_DROPPED = "\0dropped"


def _block_take(block: pd.DataFrame, parts: dict[str, list], *, target: str, timestamp: str) -> bool:
    """Append ``block``'s rows that have a target to ``parts``; ``False`` if one of its cells fails a check."""
    y = block.pop(target).to_numpy()
    if np.isinf(y).any():
        return False
    keep = ~np.isnan(y)
    everything = bool(keep.all())
    parts.setdefault(_DROPPED, []).append(int((~keep).sum()))
    raw = block.pop(timestamp)
    moments = pd.to_datetime(raw if everything else raw[keep], errors="coerce", format="mixed", utc=True)
    if moments.isna().any():
        return False
    parts[timestamp].append(moments.dt.tz_convert(None).to_numpy())
    parts[target].append(y if everything else y[keep])
    for name in block.columns:
        values = block[name].to_numpy()
        values = values if everything else values[keep]
        if not np.isfinite(values).all():
            return False
        parts[name].append(values)
    return True


def _blocks(source: IO[bytes], header: list[str], dtype: dict | None = None, chunksize: int = LOCATE_CHUNK_ROWS):
    """``source``'s rows in frames of ``chunksize``, parsed as the upload's checks parse them."""
    source.seek(0)
    try:
        with warnings.catch_warnings():
            # A data row longer than the header would silently lose cells: an error, as at upload.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            reader = pd.read_csv(
                source,
                encoding="utf-8-sig",
                header=0,
                names=header,
                skipinitialspace=True,
                index_col=False,
                dtype=dtype,
                chunksize=chunksize,
            )
            with reader:
                yield from reader
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, ValueError) as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc


def _first_problem(source: IO[bytes], header: list[str], *, target: str, timestamp: str) -> TableError:
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
    return TableError("The file could not be read as numbers where the model needs them.", code="not_csv")


def _raise_unless_too_few(check) -> None:
    try:
        check()
    except TableError as exc:
        if exc.code != "too_few_rows":
            raise
