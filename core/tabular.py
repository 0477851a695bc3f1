"""Reading tabular input (CSV) and checking it against a model's feature columns. Pure: no Django.

Training and inference share these checks so a dataset that trains is a request that predicts. Row numbers in
errors count data rows from 1 (the header is not a row), as a spreadsheet user reads them.
"""

import csv
import io
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import IO

import numpy as np
import pandas as pd

from .errors import ApplicationError, quoted
from .hints import columns_hint, encoding_hint


class TableError(ApplicationError):
    """The input table is malformed; ``extra`` names the column and row when there is one."""


def decode_text(raw: bytes) -> str:
    """CSV bytes as text, or ``TableError`` if they are empty, not UTF-8 or binary."""
    if not raw.strip():
        raise TableError("The file is empty.", code="empty_file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(exc.start, raw[:16]) from exc
    if "\x00" in text:
        raise binary(text.index("\x00"), raw[:16])
    return text


def not_utf8(offset: int, head: bytes) -> TableError:
    """The file starting with ``head`` has a byte at ``offset`` that is not UTF-8."""
    hint = encoding_hint(head)
    return TableError(
        f"The file is not UTF-8 text (undecodable byte at offset {offset}). {hint}",
        code="not_csv",
        extra={"offset": offset, "hint": hint},
    )


def binary(offset: int, head: bytes) -> TableError:
    """The file starting with ``head`` holds a NUL byte at ``offset``."""
    hint = encoding_hint(head)
    return TableError(
        f"The file is binary, not CSV text. {hint}", code="not_csv", extra={"offset": offset, "hint": hint}
    )


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


def read_csv(source: bytes | IO[bytes], *, max_columns: int | None = None, nrows: int | None = None) -> pd.DataFrame:
    """Parse CSV bytes, or the first ``nrows`` rows of a seekable binary file, into a frame of strings and
    numbers, or raise ``TableError`` saying why not.

    The header is checked first (``max_columns``, names), so a file with too many columns costs no parsing. A
    file is read as a stream: its UTF-8 is checked as far as it is parsed (an upload is checked whole while
    it streams in, ``core.csvstream``).
    """
    if isinstance(source, bytes):
        text = decode_text(source)
        header = read_header(io.StringIO(text, newline=None), max_columns=max_columns)
        stream: io.StringIO | IO[bytes] = io.StringIO(text)
        encoding = None
    else:
        header = file_header(source, max_columns=max_columns)
        stream, encoding = source, "utf-8-sig"
    try:
        with warnings.catch_warnings():
            # A data row longer than the header would silently lose cells: make it an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(stream, skipinitialspace=True, index_col=False, nrows=nrows, encoding=encoding)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, ValueError) as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc
    frame.columns = header
    return frame


# Longest header row read to check it: 1000 columns of 1000-character names fit.
MAX_HEADER_CHARS = 1 << 20


def read_header(text: IO[str], *, max_columns: int | None = None) -> list[str]:
    """The checked column names of the CSV ``text`` starts with, holding at most ``MAX_HEADER_CHARS`` of it."""
    line = text.readline(MAX_HEADER_CHARS)
    if not line.strip():
        raise (
            TableError("The file is empty.", code="empty_file")
            if not text.read(1)
            else TableError("The first row (the header) is empty.", code="bad_header")
        )
    if not line.endswith(("\n", "\r")):
        more = text.readline(MAX_HEADER_CHARS)
        if more:
            # A header too long to hold: count its columns piece by piece, then refuse it either way.
            commas = line.count(",")
            while more:
                commas += more.count(",")
                more = "" if more.endswith(("\n", "\r")) else text.readline(MAX_HEADER_CHARS)
            check_column_count(commas + 1, max_columns)
            raise TableError(
                f"The header row is longer than {MAX_HEADER_CHARS} characters.", code="bad_header", extra={}
            )
    # pandas renames a repeated header ("a", "a.1"): check the header as written.
    try:
        header = [name.strip() for name in next(csv.reader([line]), [])]
    except csv.Error as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc
    check_header(header, max_columns=max_columns)
    return header


def file_header(source: IO[bytes], *, max_columns: int | None = None) -> list[str]:
    """``read_header`` of a seekable binary file, left at its start again."""
    source.seek(0)
    # Undecodable bytes are the upload's check (core.csvstream); here they only must not stop the reading.
    header = read_header(
        # typeshed asks the wrapped file for a ``name``, which TextIOWrapper reads only when it is asked for its own.
        io.TextIOWrapper(_Unclosed(source), encoding="utf-8-sig", errors="replace"),  # type: ignore[type-var]
        max_columns=max_columns,
    )
    source.seek(0)
    return header


class _Unclosed(io.RawIOBase):
    """A view of a binary file that a text wrapper may close without closing the file."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def row_number(frame: pd.DataFrame, position: int) -> int:
    """The 1-based data row of the file that ``frame``'s row at ``position`` came from.

    Frames from ``read_csv`` carry the file's row order in their index, and filtering keeps it.
    """
    return int(frame.index[position]) + 1


def require_columns(available: Iterable[str], columns: Sequence[str]) -> None:
    """Raise ``TableError`` listing every column of ``columns`` missing from ``available``."""
    present = set(available)
    missing = [column for column in columns if column not in present]
    if missing:
        hint = columns_hint(present, missing)
        raise TableError(
            f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}." + (f" {hint}" if hint else ""),
            code="missing_columns",
            extra={"missing_columns": missing, **({"hint": hint} if hint else {})},
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
                    f"Column {quoted(column)} is not numeric "
                    f"(row {row_number(frame, position)} holds {quoted(cell)}).",
                    code="non_numeric_column",
                    extra={"column": column},
                )
            row = row_number(frame, position)
            if pd.isna(cell) or str(cell).strip() == "":
                problem = "is empty"
            elif pd.isna(values.iloc[position]):
                problem = f"{quoted(cell)} is not a number"
            else:
                problem = f"{quoted(cell)} is not a finite number"
            raise TableError(
                f"Column {quoted(column)}, row {row}: {problem}.",
                code="bad_cell",
                extra={"column": column, "row": row, "bad_rows": int(bad.sum())},
            )
        blocks.append(as_float32)
    return np.ascontiguousarray(np.column_stack(blocks)) if blocks else np.empty((len(frame), 0), np.float32)
