"""Scoring one chunk of a batch job, piece by piece, with /predict's own code path.

A chunk is read as a stream and scored in pieces of at most ``MDS_BATCH_PIECE_BYTES`` (CSV) or
``MDS_BATCH_PIECE_ROWS`` rows (Parquet), so a worker holds one piece at a time whatever the file's size. Each piece
goes through ``parse_csv`` and ``features`` (the checks /predict makes, naming column and row) and then
``prediction_from_features`` (the same engine choice), in slices of at most ``MDS_PREDICT_MAX_ROWS`` rows. The
chunk's part is written to a local temporary file and stored under a name fixed by the job and the chunk index, so
a chunk done twice (its first worker lost) writes the same object twice.
"""

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from core.errors import quoted
from core.tabular import TableError

from ..models import BatchChunk, BatchJob
from ..parsing import Table, column_cells, features, float_lines, float_texts, parse_csv, safe_cell
from ..services import prediction_from_features
from . import objects
from .sources import RangeFile, first_record_end

# A worker's sample of the input for its drift (the first rows of the first chunk).
DRIFT_SAMPLE_ROWS = 10_000


def part_name(job: BatchJob, index: int, kind: str = "part") -> str:
    extension = "csv" if kind == "errors" else job.output_format
    return f"batch/{job.key.hex}/{kind}s/{index:06d}.{extension}"


@dataclass
class ChunkOutcome:
    rows_done: int = 0
    rows_skipped: int = 0
    has_errors: bool = False
    # The first rows' features, for the drift of the job's input (chunk 0 only).
    sample: np.ndarray | None = None
    feature_names: list[str] = field(default_factory=list)


def chunk_score(*, job: BatchJob, chunk: BatchChunk, loaded: Any, checkpoint: Callable[[], None]) -> ChunkOutcome:
    """Score ``chunk`` of ``job`` with the version ``loaded`` and store its part (and its errors part, if rows
    were skipped); ``checkpoint`` is called between pieces (it raises to stop: cancelled, lease lost).

    Raises:
        TableError: with ``on_error=fail``, the first bad row, numbered over the whole input.
    """
    outcome = ChunkOutcome(feature_names=list(loaded.feature_names))
    if job.model_format == "auto":
        # Waits for the pickle once, so the engine each piece gets depends on the piece alone (as a /predict
        # request of the same rows would once loaded), and a chunk redone elsewhere writes the same values.
        loaded.pickle.usable()
    part_handle, part_path = tempfile.mkstemp(prefix="mds-batch-part-")
    errors_handle, errors_path = tempfile.mkstemp(prefix="mds-batch-errors-")
    try:
        with os.fdopen(part_handle, "wb") as part, os.fdopen(errors_handle, "w", newline="") as errors_file:
            writer = _PartWriter(job, part, header=chunk.index == 0)
            errors = csv.writer(errors_file, lineterminator="\n")
            row = chunk.first_row
            for table in _pieces(job, chunk):
                checkpoint()
                n_rows = len(table)
                X, keep = _features(job, table, loaded, first_row=row, errors=errors)
                skipped = n_rows - len(X)
                if len(X):
                    columns = _predict(job, loaded, X)
                    writer.write(_passthrough(job, table, keep), columns)
                if outcome.sample is None and chunk.index == 0 and len(X):
                    outcome.sample = X[:DRIFT_SAMPLE_ROWS].copy()
                outcome.rows_done += len(X)
                outcome.rows_skipped += skipped
                row += n_rows
            writer.close(outcome.feature_names)
        objects.put_file(part_name(job, chunk.index), part_path)
        if outcome.rows_skipped:
            outcome.has_errors = True
            objects.put_file(part_name(job, chunk.index, "errors"), errors_path)
        return outcome
    finally:
        for path in (part_path, errors_path):
            try:
                os.unlink(path)
            except OSError:
                pass


def _pieces(job: BatchJob, chunk: BatchChunk) -> Iterator[Table]:
    if job.input_format == BatchJob.Format.PARQUET:
        yield from _parquet_pieces(job, chunk)
        return
    header = (job.input_header + "\n").encode()
    piece_bytes = settings.MDS_BATCH_PIECE_BYTES
    buffer = b""
    for block in objects.iter_blocks(job.input_name, chunk.start, chunk.end):
        buffer += block
        while len(buffer) >= piece_bytes:
            # A piece starts at a record's start: the quotes are followed from there.
            end = first_record_end(buffer, piece_bytes - 1, in_quotes=False)
            if end is None:
                break
            yield _parsed(header + buffer[:end])
            buffer = buffer[end:]
    if buffer.strip():
        yield _parsed(header + buffer)


def _parsed(raw: bytes) -> Table:
    return parse_csv(raw, max_rows=1 << 62, max_columns=settings.MDS_MAX_COLUMNS)


def _parquet_pieces(job: BatchJob, chunk: BatchChunk) -> Iterator[Table]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(RangeFile(job.input_name))
    for batch in source.iter_batches(
        batch_size=settings.MDS_BATCH_PIECE_ROWS, row_groups=range(chunk.start, chunk.end)
    ):
        table = pa.Table.from_batches([batch])
        yield _ParquetTable(columns=list(table.column_names), arrow=table)


def _features(job: BatchJob, table: Table, loaded: Any, *, first_row: int, errors: Any) -> tuple[np.ndarray, Any]:
    """The piece's feature matrix and which rows it holds (``None``: all); with ``on_error=skip`` the rows with a
    bad cell are written to ``errors`` (row over the whole input, column, message) and left out."""
    try:
        return features(table, loaded.feature_names, calendar_from=loaded.calendar_from), None
    except TableError as exc:
        if job.on_error == BatchJob.OnError.FAIL or exc.code not in ("bad_cell", "non_numeric_column"):
            raise _renumbered(exc, first_row) from exc
    keep = _good_rows(table, loaded.feature_names, first_row=first_row, errors=errors)
    frame = _frame(table)[keep].reset_index(drop=True)
    kept = Table(columns=list(table.columns), frame=frame)
    return features(kept, loaded.feature_names, calendar_from=loaded.calendar_from), keep


class _ParquetTable(Table):
    """A Parquet piece: its pandas frame (the checks' slow path) is made from the arrow table when first needed."""

    def pandas(self) -> Any:
        if self.frame is None:
            self.frame = self.arrow.to_pandas()
        return self.frame


def _frame(table: Table) -> Any:
    import pandas as pd

    if table.rows is not None:
        return pd.DataFrame(table.rows, columns=table.columns)
    return table.pandas()


def _renumbered(exc: TableError, first_row: int) -> TableError:
    """``exc`` with its row counted over the whole input instead of the piece."""
    extra = dict(exc.extra)
    message = exc.message
    if isinstance(extra.get("row"), int):
        row = extra["row"] + first_row
        message = message.replace(f"row {extra['row']}", f"row {row}", 1)
        extra["row"] = row
    return TableError(message, code=exc.code, extra=extra)


def _good_rows(table: Table, names: list[str], *, first_row: int, errors: Any) -> np.ndarray:
    import pandas as pd

    frame = _frame(table)
    good = np.ones(len(frame), dtype=bool)
    for name in names:
        if name not in frame.columns:
            continue
        values = pd.to_numeric(frame[name], errors="coerce")
        with np.errstate(over="ignore"):
            as_float32 = values.to_numpy(dtype="float32", na_value=np.nan)
        bad = (values.isna().to_numpy() | ~np.isfinite(as_float32)) & good
        for position in np.flatnonzero(bad):
            cell = frame[name].iloc[position]
            if cell is None or (isinstance(cell, float) and np.isnan(cell)) or str(cell).strip() == "":
                problem = "is empty"
            elif pd.isna(values.iloc[position]):
                problem = f"{quoted(cell)} is not a number"
            else:
                problem = f"{quoted(cell)} is not a finite number"
            row = first_row + int(position) + 1
            errors.writerow([row, name, f"Column {quoted(name)}, row {row}: {problem}."])
        good &= ~bad
    return good


def _predict(job: BatchJob, loaded: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    """The output's prediction columns for ``X``, computed in slices /predict would accept."""
    step = settings.MDS_PREDICT_MAX_ROWS
    if job.explain:
        step = min(step, settings.MDS_EXPLAIN_MAX_ROWS)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(X), step):
        prediction = prediction_from_features(
            loaded=loaded,
            X=np.ascontiguousarray(X[start : start + step]),
            model_format=job.model_format,
            interval=job.interval,
            explain=job.explain,
        )
        columns = {"prediction": prediction.values}
        if prediction.intervals is not None:
            columns["lower"] = prediction.intervals.lower
            columns["upper"] = prediction.intervals.upper
        if prediction.contributions is not None:
            # As /predict's CSV answer: the base, then each feature's contribution (they sum to the prediction).
            columns["contribution_base"] = np.full(len(prediction.values), prediction.contributions.base)
            for index, feature in enumerate(prediction.contributions.features):
                columns[f"contribution_{feature}"] = prediction.contributions.values[:, index]
        for name, values in columns.items():
            parts.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(values) for name, values in parts.items()}


def _passthrough(job: BatchJob, table: Table, keep: np.ndarray | None) -> dict[str, Any]:
    """The passthrough columns' cells of the kept rows: text for a CSV input (as typed columns differ between
    pieces), the file's own types for Parquet."""
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for name in job.passthrough:
        if table.arrow is not None:
            array = table.arrow.column(table.columns.index(name))
            if job.input_format == BatchJob.Format.CSV:
                array = array.cast(pa.string())
        else:
            array = pa.array([None if cell is None else str(cell) for cell in column_cells(table, name)], pa.string())
        if keep is not None:
            array = array.filter(pa.array(keep))
        columns[name] = array
    return columns


# A passthrough cell that safe_cell would change (a formula's first character) or that CSV must quote.
_NEEDS_CARE = r'^[=+\-@\t\r]|[",\r\n]'


def _plain_cells(array: Any) -> list[bytes] | None:
    """The column's cells as CSV text when no cell needs quoting or neutralising (text or integers), else
    ``None`` (the row by row writer does it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(array.type):
        return [text.encode() for text in array.cast(pa.string()).fill_null("").to_pylist()]
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    array = array.fill_null("")
    if pc.any(pc.match_substring_regex(array, _NEEDS_CARE)).as_py():
        return None
    return [text.encode() for text in array.to_pylist()]


def _csv_line(cells: list[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(cells)
    return text.getvalue().encode()


def _csv_rows(passthrough: dict[str, Any], predictions: dict[str, np.ndarray]) -> bytes:
    """Rows written cell by cell, passthrough cells through ``safe_cell`` (the slow path, for cells that need
    it)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    cells = [[safe_cell(cell) for cell in array.to_pylist()] for array in passthrough.values()]
    values = [[value.decode() for value in float_texts(array)] for array in predictions.values()]
    writer.writerows(zip(*cells, *values, strict=True))
    return text.getvalue().encode()


class _PartWriter:
    """Writes a chunk's rows as CSV (the header only in chunk 0's part, so the parts concatenate) or as one
    Parquet file with a row group per piece."""

    def __init__(self, job: BatchJob, out: Any, *, header: bool):
        self.job, self.out, self.header = job, out, header
        self._parquet: Any = None
        self._schema: Any = None

    def write(self, passthrough: dict[str, Any], predictions: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        if self.job.output_format == BatchJob.Format.PARQUET:
            import pyarrow.parquet as pq

            table = pa.table({**passthrough, **{name: pa.array(v) for name, v in predictions.items()}})
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.out, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
            return
        names = [*passthrough, *predictions]
        if self.header:
            self.out.write(_csv_line([safe_cell(name) for name in names]))
            self.header = False
        cells = [_plain_cells(array) for array in passthrough.values()]
        if any(column is None for column in cells):
            self.out.write(_csv_rows(passthrough, predictions))
        elif len(names) == 1:
            self.out.write(float_lines(next(iter(predictions.values()))))
        else:
            columns = [*cells, *(float_texts(values) for values in predictions.values())]
            self.out.write(b"\n".join(map(b",".join, zip(*columns, strict=True))) + b"\n")

    def close(self, feature_names: list[str]) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self.header and self.job.output_format == BatchJob.Format.CSV:
            # Chunk 0 with every row skipped still carries the header.
            self.out.write(_csv_line([safe_cell(name) for name in output_names(self.job, feature_names)]))


def output_names(job: BatchJob, feature_names: list[str]) -> list[str]:
    """The result's columns: passthrough, prediction, then the interval's and the explanation's."""
    names = [*job.passthrough, "prediction"]
    if job.interval is not None:
        names += ["lower", "upper"]
    if job.explain:
        names += ["contribution_base", *(f"contribution_{feature}" for feature in feature_names)]
    return names
