"""A batch input's columns and its split into chunks: byte ranges of whole CSV records, or Parquet row groups.

CSV records may hold quoted newlines (RFC 4180), so a chunk boundary is the end of a record found by a scan that
follows the quotes; the scan reads the input once, 1 MiB at a time, and counts each chunk's rows (blank lines are
no rows, as for /predict). Parquet is split by its footer alone.
"""

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.tabular import TableError, check_header, decode_text

from . import objects

# A newline directly followed by an optional CR and another newline ends a blank line (no row).
_BLANK_LINE_END = re.compile(rb"\n\r?(?=\n)")
# The longest header row read.
HEADER_MAX_BYTES = 1 << 20

# ``dataset=<id>`` names a stored training dataset; the app that keeps datasets tells its object's name.
_dataset_resolver: Callable[[int, object], str | None] | None = None


def dataset_resolver_register(resolver: Callable[[int, object], str | None]) -> None:
    """``resolver(dataset_id, user)`` returns the storage name of a dataset ``user`` may read, else ``None``."""
    global _dataset_resolver
    _dataset_resolver = resolver


def dataset_object(dataset_id: int, user) -> str | None:
    return None if _dataset_resolver is None else _dataset_resolver(dataset_id, user)


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    first_row: int
    n_rows: int


def csv_header(head: bytes) -> tuple[str, list[str], int]:
    """The header line (as text, without its line end), its checked column names, and the offset of the first data
    byte, from the first bytes of a CSV."""
    end = first_record_end(head, 0, in_quotes=False)
    if end is None:
        if len(head) >= HEADER_MAX_BYTES:
            raise TableError(f"The header row is longer than {HEADER_MAX_BYTES} bytes.", code="bad_header")
        end = len(head)
    text = decode_text(head[:end]).rstrip("\r\n")
    try:
        columns = [name.strip() for name in next(csv.reader(io.StringIO(text)), [])]
    except csv.Error as exc:
        raise TableError(f"The file is not valid CSV: {exc}", code="not_csv") from exc
    check_header(columns)
    return text, columns, end


def first_record_end(data: bytes, start: int, *, in_quotes: bool) -> int | None:
    """The offset just past the first newline at or after ``start`` that is outside quotes, given whether
    ``data`` begins inside a quoted cell; ``None`` if there is none in ``data``."""
    if not in_quotes and b'"' not in data:
        found = data.find(b"\n", start)
        return found + 1 if found >= 0 else None
    quoted, position = in_quotes, 0
    for index, part in enumerate(data.split(b'"')):
        if index:
            quoted = not quoted
            position += 1
        if not quoted and position + len(part) > start:
            found = part.find(b"\n", max(0, start - position))
            if found >= 0:
                return position + found + 1
        position += len(part)
    return None


class RecordCounter:
    """Rows in a CSV's data fed in order, quoted newlines and blank lines not counted (``core.csvstream``'s
    rules)."""

    def __init__(self) -> None:
        self.rows = 0
        self.in_quotes = False
        self.at_line_start = True

    def feed(self, data: bytes) -> None:
        for index, part in enumerate(data.split(b'"')):
            if index:
                self.in_quotes = not self.in_quotes
                self.at_line_start = False
            if self.in_quotes or not part:
                continue
            newlines = part.count(b"\n")
            if newlines:
                scan = b"\n" + part if self.at_line_start else part
                self.rows += newlines - len(_BLANK_LINE_END.findall(scan))
                tail = part[part.rfind(b"\n") + 1 :]
                self.at_line_start = not tail.strip(b"\r")
            elif part.strip(b"\r"):
                self.at_line_start = False

    def finish(self) -> int:
        """Rows, counting a last line without a newline."""
        return self.rows + (0 if self.at_line_start else 1)


def csv_chunks(blocks: Iterable[bytes], *, start: int, chunk_bytes: int) -> list[Chunk]:
    """Chunks of about ``chunk_bytes`` each (each ends at the first record end past that size) of the CSV data
    that ``blocks`` holds from byte ``start`` on (after the header)."""
    chunks: list[Chunk] = []
    counter = RecordCounter()
    chunk_start, rows_before, base = start, 0, start
    target = start + chunk_bytes
    for block in blocks:
        rel = 0
        while base + len(block) > target:
            search = max(target - base, rel)
            counter.feed(block[rel:search])
            # The quote state is known at ``search``: the record end is looked for from there.
            found = first_record_end(block[search:], 0, in_quotes=counter.in_quotes)
            end = None if found is None else search + found
            if end is None:
                counter.feed(block[search:])
                # The cut comes with the next record end, in a later block.
                rel = len(block)
                target = base + len(block)
                break
            counter.feed(block[search:end])
            chunks.append(Chunk(chunk_start, base + end, rows_before, counter.rows - rows_before))
            chunk_start, rows_before, rel = base + end, counter.rows, end
            target = chunk_start + chunk_bytes
        else:
            counter.feed(block[rel:])
        base += len(block)
    rows = counter.finish()
    if base > chunk_start or not chunks:
        if rows > rows_before or not chunks:
            chunks.append(Chunk(chunk_start, base, rows_before, rows - rows_before))
        else:
            # Trailing blank lines only: they belong to the last chunk.
            last = chunks.pop()
            chunks.append(Chunk(last.start, base, last.first_row, last.n_rows))
    return chunks


def csv_plan(name: str, *, header_end: int, chunk_bytes: int) -> list[Chunk]:
    """The chunks of the stored CSV ``name``, read once from its header's end in 1 MiB blocks."""
    return csv_chunks(objects.iter_blocks(name, header_end), start=header_end, chunk_bytes=chunk_bytes)


def local_plan(path: str, *, input_format: str, chunk_bytes: int) -> list[Chunk]:
    """The chunks of an uploaded file still on local disk: the same split ``csv_plan``/``parquet_chunks`` make of
    the stored object, without reading it back from storage."""
    if input_format == "parquet":
        return parquet_chunks(path, chunk_bytes=chunk_bytes)
    with open(path, "rb") as local:
        _, _, header_end = csv_header(local.read(HEADER_MAX_BYTES))
        local.seek(header_end)
        blocks = iter(lambda: local.read(objects.STREAM_BLOCK_BYTES), b"")
        return csv_chunks(blocks, start=header_end, chunk_bytes=chunk_bytes)


def parquet_columns(source) -> list[str]:
    """The column names of a Parquet file (read from its footer)."""
    import pyarrow.parquet as pq

    try:
        return list(pq.ParquetFile(source).schema_arrow.names)
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses for a file that is not Parquet
        raise TableError(f"The file is not valid Parquet: {exc}", code="not_parquet") from exc


def parquet_chunks(source, *, chunk_bytes: int) -> list[Chunk]:
    """Ranges of whole row groups of about ``chunk_bytes`` (uncompressed) each, from the file's footer."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(source).metadata
    chunks: list[Chunk] = []
    start, rows_before, rows, size = 0, 0, 0, 0
    for group in range(metadata.num_row_groups):
        meta = metadata.row_group(group)
        rows += meta.num_rows
        size += meta.total_byte_size
        if size >= chunk_bytes:
            chunks.append(Chunk(start, group + 1, rows_before, rows - rows_before))
            start, rows_before, size = group + 1, rows, 0
    if start < metadata.num_row_groups or not chunks:
        chunks.append(Chunk(start, metadata.num_row_groups, rows_before, rows - rows_before))
    return chunks


class RangeFile(io.RawIOBase):
    """A stored object as a seekable file read through ranged requests (what pyarrow needs for a Parquet
    footer and its row groups), never downloaded whole."""

    def __init__(self, name: str):
        self.name, self._size, self._position = name, objects.size(name), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position, 2: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        end = min(self._size, self._position + len(buffer))
        if end <= self._position:
            return 0
        data = objects.read_range(self.name, self._position, end)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)
