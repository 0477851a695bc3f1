"""Reading tabular input (CSV) and checking it against a model's feature columns. Pure: no Django.

Training and inference share these checks so a dataset that trains is a request that predicts. Row numbers in
errors count data rows from 1 (the header is not a row), as a spreadsheet user reads them.
"""

import csv
import io
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import IO

import numpy as np
import pandas as pd

from .errors import ApplicationError


class TableError(ApplicationError):
    """The input table is malformed; ``extra`` names the column and row when there is one."""


def decode_text(raw: bytes) -> str:
    """CSV bytes as text, or ``TableError`` if they are empty, not UTF-8 or binary."""
    if not raw.strip():
        raise TableError("The file is empty.", code="empty_file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError(
            f"The file is not UTF-8 text (undecodable byte at offset {exc.start}).", code="not_csv"
        ) from exc
    if "\x00" in text:
        raise TableError("The file is binary, not CSV text.", code="not_csv")
    return text


def check_column_count(n_columns: int, max_columns: int | None) -> None:
    """``TableError`` (``too_many_columns``) past ``max_columns``: checked before any per-column work."""
    if max_columns is not None and n_columns > max_columns:
        raise TableError(
            f"Too many columns: {n_columns}; at most {max_columns} are accepted.",
            code="too_many_columns",
            extra={"columns": n_columns, "max_columns": max_columns},
        )


def check_header(header: list[str], *, max_columns: int | None = None) -> None:
    """``TableError`` unless there are at most ``max_columns`` columns, each with a non-empty, unique name.

    Linear in the number of columns: a header of 300 000 names is checked in milliseconds.
    """
    check_column_count(len(header), max_columns)
    duplicated = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicated or "" in header:
        raise TableError(
            "Every column needs a unique, non-empty name in the header row.",
            code="bad_header",
            extra={"duplicated_columns": duplicated},
        )


def read_csv(source: bytes | IO[bytes], *, max_columns: int | None = None) -> pd.DataFrame:
    """Parse CSV bytes into a frame of strings and numbers, or raise ``TableError`` saying why not.

    The header is checked first (``max_columns``, names), so a file with too many columns costs no parsing.
    """
    text = decode_text(source if isinstance(source, bytes) else source.read())
    # pandas renames a repeated header ("a", "a.1"): check the header as written.
    try:
        header = [name.strip() for name in next(csv.reader(io.StringIO(text)), [])]
    except csv.Error as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc
    check_header(header, max_columns=max_columns)
    try:
        with warnings.catch_warnings():
            # A data row longer than the header would silently lose cells: make it an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), skipinitialspace=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, ValueError) as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc
    frame.columns = header
    return frame


def row_number(frame: pd.DataFrame, position: int) -> int:
    """The 1-based data row of the file that ``frame``'s row at ``position`` came from.

    Frames from ``read_csv`` carry the file's row order in their index, and filtering keeps it.
    """
    return int(frame.index[position]) + 1


def require_columns(available: Sequence[str], columns: Sequence[str]) -> None:
    """Raise ``TableError`` listing every column of ``columns`` missing from ``available``."""
    present = set(available)
    missing = [column for column in columns if column not in present]
    if missing:
        raise TableError(
            f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.",
            code="missing_columns",
            extra={"missing_columns": missing},
        )


def feature_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The ``columns`` of ``frame`` as a C-ordered float32 matrix, or ``TableError`` naming a bad cell.

    Empty and non-numeric cells are refused rather than imputed, so the sklearn and ONNX formats never see
    input that they might treat differently.
    """
    require_columns(frame.columns, columns)
    blocks = []
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        with np.errstate(over="ignore"):
            # Checked as float32, what both formats compute in: 1e39 is finite as float64 but not here.
            as_float32 = values.to_numpy(dtype="float32", na_value=np.nan)
        bad = values.isna() | ~np.isfinite(as_float32)
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            cell = frame[column].iloc[position]
            if bad.all() and not frame[column].isna().all():
                raise TableError(
                    f"Column {column!r} is not numeric (row {row_number(frame, position)} holds {cell!r}).",
                    code="non_numeric_column",
                    extra={"column": column},
                )
            row = row_number(frame, position)
            if pd.isna(cell) or str(cell).strip() == "":
                problem = "is empty"
            elif pd.isna(values.iloc[position]):
                problem = f"{cell!r} is not a number"
            else:
                problem = f"{cell!r} is not a finite number"
            raise TableError(
                f"Column {column!r}, row {row}: {problem}.",
                code="bad_cell",
                extra={"column": column, "row": row, "bad_rows": int(bad.sum())},
            )
        blocks.append(as_float32)
    return np.ascontiguousarray(np.column_stack(blocks)) if blocks else np.empty((len(frame), 0), np.float32)
