"""Request bodies to feature matrices, and predictions back to CSV. Pure: no Django.

Inputs are a CSV body (the upload of the original service, or ``text/csv``) and MLflow's scoring JSON
(``dataframe_split``, ``dataframe_records``, ``instances``/``inputs``), so MLflow clients work unchanged. A small
CSV is read with the ``csv`` module: pandas costs ~2 ms per call, more than the model. Large CSVs are read by
pyarrow (``inference.arrow_csv``) when their feature columns are clean numbers, else by ``core.tabular``, the same
parser and checks training uses. Row numbers in errors count data rows
from 1, as a spreadsheet user reads them.
"""

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.calendar import CALENDAR_FEATURES, calendar_matrix, parse_timestamps
from core.errors import TooLarge, quoted
from core.tabular import (
    TableError,
    check_column_count,
    check_header,
    decode_text,
    feature_matrix,
    read_csv,
    require_columns,
)

from .arrow_csv import arrow_read, numeric_matrix
from .json_limits import STREAM_CHECK_BYTES, json_caps_check

# Below this many bytes a CSV is parsed in pure Python; above, pandas' C parser is faster.
SMALL_CSV_BYTES = 64 * 1024
FLOAT32_MAX = float(np.finfo(np.float32).max)
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# The same, at the start of a line inside a cell: a reader that splits on a bare CR would start a row there.
FORMULA_AFTER_LINE_BREAK = re.compile(r"(?<=[\r\n])(?=[=+\-@\t])")


@dataclass
class Table:
    """Parsed input rows: ``rows`` (cells as given) for small inputs; for large CSVs a pyarrow table (``arrow``,
    with the body in ``raw``) or a pandas ``frame``, made from ``raw`` when first needed."""

    columns: list[str]
    rows: list[list[Any]] | None = None
    frame: Any = None
    arrow: Any = None
    raw: bytes = b""

    def __len__(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return self.arrow.num_rows if self.arrow is not None else len(self.frame)

    def iter_rows(self) -> Iterator[list[Any]]:
        if self.rows is not None:
            return iter(self.rows)
        return (list(row) for row in self.pandas().itertuples(index=False, name=None))

    def pandas(self) -> Any:
        """The rows as the pandas frame ``core.tabular`` reads (and checks) from the body."""
        if self.frame is None:
            self.frame = read_csv(self.raw)
        return self.frame


def too_many_rows(n_rows: int, max_rows: int) -> TooLarge:
    return TooLarge(
        f"Too many rows: {n_rows}; at most {max_rows} per request.",
        extra={"rows": n_rows, "max_rows": max_rows},
    )


def too_many_rows_counted(n_rows: int, max_rows: int) -> TooLarge:
    """As ``too_many_rows``, for a count that stopped at the first row past the cap (``n_rows`` is a lower
    bound)."""
    return TooLarge(
        f"Too many rows: more than {max_rows}; at most {max_rows} per request.",
        extra={"rows": n_rows, "max_rows": max_rows},
    )


def parse_csv(raw: bytes, *, max_rows: int, max_columns: int | None = None) -> Table:
    """Read a CSV body; ``TableError`` if it is not CSV or has more than ``max_columns`` columns, ``too_large``
    past ``max_rows`` data rows."""
    if len(raw) > SMALL_CSV_BYTES:
        arrow = _arrow_table(raw, max_columns)
        table = arrow or Table(columns=[], frame=read_csv(raw, max_columns=max_columns))
        table.columns = table.columns or list(table.frame.columns)
        if len(table) > max_rows:
            raise too_many_rows(len(table), max_rows)
        return table
    text = decode_text(raw)
    try:
        records = [row for row in csv.reader(io.StringIO(text), skipinitialspace=True) if row]
    except csv.Error as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc
    header = [cell.strip() for cell in records[0]]
    check_header(header, max_columns=max_columns)
    rows = records[1:]
    if len(rows) > max_rows:
        raise too_many_rows(len(rows), max_rows)
    for number, row in enumerate(rows, start=1):
        if len(row) > len(header):
            raise TableError(
                f"Row {number} has {len(row)} cells but the header names {len(header)} columns.",
                code="not_csv",
                extra={"row": number},
            )
        if len(row) < len(header):
            row.extend([""] * (len(header) - len(row)))
    return Table(columns=header, rows=rows)


def parse_json(raw: bytes, *, columns: Sequence[str], max_rows: int, max_columns: int | None = None) -> Table:
    """Read MLflow's scoring JSON; ``columns`` (the signature's) name the cells of rows given as lists.

    Column counts are checked against ``max_columns`` before any per-column work (``too_many_columns``). A body
    that may hold more values than the largest request allowed (``max_rows`` rows of ``columns``: more commas
    than that) has its rows and columns counted as its tokens stream by, before anything is built
    (``inference.json_limits``); one within it is parsed whole and checked after, as building it costs no more
    than serving the largest request.
    """
    if len(raw) > STREAM_CHECK_BYTES and raw.count(b",") >= max_rows * max(len(columns), 1):
        json_caps_check(raw, max_rows=max_rows, max_columns=max_columns, too_many_rows=too_many_rows_counted)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TableError(f"The body is not valid JSON: {exc}", code="not_json") from exc
    keys = ("dataframe_split", "dataframe_records", "instances", "inputs")
    present = [key for key in keys if isinstance(body, dict) and key in body]
    if len(present) != 1:
        raise TableError(
            f"The JSON body needs exactly one of {', '.join(keys)}.", code="bad_json", extra={"accepted": keys}
        )
    key = present[0]
    payload = body[key]
    if key == "dataframe_split":
        return _dataframe_split(payload, columns, max_rows, max_columns)
    # MLflow also accepts {column: [values...]} for instances/inputs.
    if isinstance(payload, dict) and key != "dataframe_records":
        check_column_count(len(payload), max_columns)
        return _column_lists(payload, key, max_rows)
    if not isinstance(payload, list):
        raise TableError(f'"{key}" needs a list of rows.', code="bad_json")
    _check_rows(payload, max_rows)
    if all(isinstance(row, list) for row in payload):
        return _row_lists(payload, columns)
    return _records(payload, key, max_columns)


def _dataframe_split(payload: Any, columns: Sequence[str], max_rows: int, max_columns: int | None) -> Table:
    """``{"columns": [...], "data": [[...], ...]}``; without ``columns`` the rows are in signature order."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise TableError('"dataframe_split" needs "columns" and "data" (a list of rows).', code="bad_json")
    given = payload.get("columns")
    if given is not None and not (isinstance(given, list) and all(isinstance(name, str) for name in given)):
        raise TableError('"dataframe_split.columns" must be a list of column names.', code="bad_json")
    header = list(given or columns)
    check_column_count(len(header), max_columns)
    data = payload["data"]
    _check_rows(data, max_rows)
    for number, row in enumerate(data, start=1):
        if not isinstance(row, list) or len(row) != len(header):
            raise TableError(
                f"Row {number} of dataframe_split.data is not a list of {len(header)} values.",
                code="bad_json",
                extra={"row": number},
            )
    check_header(header)
    return Table(columns=header, rows=data)


def _column_lists(payload: dict, key: str, max_rows: int) -> Table:
    """``{column: [values...]}``, every list as long."""
    lengths = {len(values) if isinstance(values, list) else -1 for values in payload.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise TableError(f'"{key}" as an object needs one list of values per column, all as long.', code="bad_json")
    data = [list(cells) for cells in zip(*payload.values(), strict=True)]
    _check_rows(data, max_rows)
    return Table(columns=[str(column) for column in payload], rows=data)


def _row_lists(payload: list[list], columns: Sequence[str]) -> Table:
    """Rows as lists of values in signature order."""
    for number, row in enumerate(payload, start=1):
        if len(row) != len(columns):
            raise TableError(
                f"Row {number} has {len(row)} values; the model takes {len(columns)}: {', '.join(columns)}.",
                code="bad_json",
                extra={"row": number},
            )
    return Table(columns=list(columns), rows=payload)


def _records(payload: list, key: str, max_columns: int | None) -> Table:
    """Rows as ``{column: value}`` objects; a column missing from a row is an empty cell."""
    header: dict[str, None] = {}
    for number, record in enumerate(payload, start=1):
        if not isinstance(record, dict):
            raise TableError(f'Row {number} of "{key}" is not an object.', code="bad_json", extra={"row": number})
        check_column_count(len(record), max_columns)
        header.update(dict.fromkeys(record))
        check_column_count(len(header), max_columns)
    names = [str(name) for name in header]
    return Table(columns=names, rows=[[record.get(name) for name in names] for record in payload])


def features(table: Table, names: Sequence[str], *, calendar_from: str | None = None) -> np.ndarray:
    """The ``names`` columns as a C-ordered float32 matrix; extra columns are ignored.

    With ``calendar_from`` (a version trained with ``calendar=true``) the calendar features among ``names``
    (``core.calendar``, the last ones) are derived from that timestamp column, the way training derived them.

    Raises:
        TableError: listing the missing columns, or naming the first empty or non-numeric cell (or time).
    """
    if calendar_from is not None:
        return _with_calendar(table, list(names), calendar_from)
    if table.arrow is not None:
        require_columns(table.columns, names)
        position_of = {name: position for position, name in enumerate(table.columns)}
        X = numeric_matrix(table.arrow, [position_of[name] for name in names])
        if X is not None:
            return X
    if table.rows is None:
        return feature_matrix(table.pandas(), names)
    require_columns(table.columns, names)
    position_of = {name: position for position, name in enumerate(table.columns)}
    positions = [position_of[name] for name in names]
    X = np.empty((len(table.rows), len(positions)), dtype=np.float32)
    for number, row in enumerate(table.rows, start=1):
        for j, position in enumerate(positions):
            X[number - 1, j] = _number(row[position], names[j], number)
    return X


def _with_calendar(table: Table, names: list[str], timestamp: str) -> np.ndarray:
    derived = [name for name in names if name in CALENDAR_FEATURES]
    own = [name for name in names if name not in CALENDAR_FEATURES]
    require_columns(table.columns, [*own, timestamp])
    moments = calendar_matrix(parse_timestamps(column_cells(table, timestamp), column=timestamp))
    X = np.empty((len(table), len(names)), dtype=np.float32)
    X[:, : len(own)] = features(table, own)
    position_of = {name: index for index, name in enumerate(CALENDAR_FEATURES)}
    for offset, name in enumerate(derived):
        X[:, len(own) + offset] = moments[:, position_of[name]]
    return X


def column_cells(table: Table, name: str) -> list[Any]:
    """The cells of one column as given (text, or what pyarrow or pandas made of it)."""
    position = table.columns.index(name)
    if table.rows is not None:
        return [row[position] for row in table.rows]
    if table.arrow is not None:
        return table.arrow.column(position).to_pylist()
    return list(table.pandas()[name])


def write_csv(
    table: Table,
    predictions: Iterable[float],
    *,
    column: str = "prediction",
    more: dict[str, Iterable[float]] | None = None,
) -> str:
    """The input rows plus a ``prediction`` column (and the ``more`` columns after it), with every cell a
    spreadsheet would run as a formula neutralised (prefixed with ``'``, also after a line break inside a cell),
    and every cell holding CR or LF quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # Python's writer quotes a cell holding LF (the line terminator) but not one holding a bare CR, which many
    # readers take as a line break: a row holding CR is written with every cell quoted.
    quoting = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    more = more or {}
    _write_row(writer, quoting, [safe_cell(name) for name in [*table.columns, column, *more]])
    if not more:
        for row, value in zip(table.iter_rows(), predictions, strict=True):
            _write_row(writer, quoting, [*(safe_cell(cell) for cell in row), repr(float(value))])
        return buffer.getvalue()
    for row, value, *others in zip(table.iter_rows(), predictions, *more.values(), strict=True):
        _write_row(
            writer,
            quoting,
            [*(safe_cell(cell) for cell in row), *(repr(float(cell)) for cell in (value, *others))],
        )
    return buffer.getvalue()


# Python writes a float in positional notation from 1e-4 (included) to 1e16 (excluded); outside it, with an exponent.
_POSITIONAL_MIN, _POSITIONAL_MAX = 1e-4, 1e16


def float_texts(values: np.ndarray) -> list[bytes]:
    """``repr(float(v)).encode()`` of every value, as ``write_csv`` writes a prediction, ~10x faster.

    Python's ``repr`` costs ~0.6 us for a 17-digit float (1.1 s per million predictions on these machines); orjson
    writes the same shortest round-trip digits in ~0.08 us. Both agree digit for digit wherever Python writes no
    exponent (checked on 6 million values across the range); the values outside that range, and nan or inf,
    are written by ``repr`` itself.
    """
    import orjson

    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return []
    texts = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        other = ~((magnitude >= _POSITIONAL_MIN) & (magnitude < _POSITIONAL_MAX)) & (values != 0)
    for index in np.flatnonzero(other):
        texts[index] = repr(float(values[index])).encode()
    return texts


def float_lines(values: np.ndarray) -> bytes:
    """``float_texts`` as one column of CSV lines (each ending with a newline)."""
    texts = float_texts(values)
    return b"\n".join(texts) + b"\n" if texts else b""


def _write_row(writer: Any, quoting: Any, cells: list[str]) -> None:
    if any("\r" in cell for cell in cells):
        quoting.writerow(cells)
    else:
        writer.writerow(cells)


def _arrow_table(raw: bytes, max_columns: int | None) -> Table | None:
    """The body read by pyarrow, its header checked as ``core.tabular`` checks it; ``None`` if pyarrow cannot
    read it (then pandas does, and says what is wrong)."""
    text = decode_text(raw)
    try:
        header = [name.strip() for name in next(csv.reader(io.StringIO(text[: text.find("\n") + 1 or None])), [])]
    except csv.Error:
        return None
    check_header(header, max_columns=max_columns)
    arrow = arrow_read(raw)
    if arrow is None or arrow.num_columns != len(header):
        return None
    return Table(columns=header, arrow=arrow, raw=raw)


def _check_rows(rows: Any, max_rows: int) -> None:
    if not isinstance(rows, list):
        raise TableError("The rows must be a JSON list.", code="bad_json")
    if not rows:
        raise TableError("There are no rows to predict.", code="empty_file")
    if len(rows) > max_rows:
        raise too_many_rows(len(rows), max_rows)


def _number(cell: Any, column: str, row: int) -> float:
    if isinstance(cell, bool) or not isinstance(cell, int | float | str) or cell == "":
        problem = "is empty" if cell is None or cell == "" else f"{quoted(cell)} is not a number"
    else:
        try:
            value = float(cell)
        except (ValueError, OverflowError):
            problem = f"{quoted(cell)} is not a number" if str(cell).strip() else "is empty"
        else:
            # Checked against float32's range, what both formats compute in.
            if math.isfinite(value) and abs(value) <= FLOAT32_MAX:
                return value
            problem = f"{quoted(cell)} is not a finite number"
    raise TableError(
        f"Column {quoted(column)}, row {row}: {problem}.", code="bad_cell", extra={"column": column, "row": row}
    )


def safe_cell(cell: Any) -> str:
    """The cell as text, a ``'`` before a formula at its start or at the start of any line inside it; numbers
    (a negative prediction passed through) are left as they are."""
    text = "" if cell is None else str(cell)
    if text.startswith(FORMULA_PREFIXES) and not _is_number(text):
        text = "'" + text
    if "\r" in text or "\n" in text:
        text = FORMULA_AFTER_LINE_BREAK.sub("'", text)
    return text


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
