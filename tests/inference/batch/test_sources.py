"""Splitting a CSV into chunks of whole records: no row lost or doubled, quotes, CRLF, a last line without newline."""

import csv
import io

import pytest

from inference.batch.sources import RecordCounter, csv_chunks, csv_header


def blocks(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


def records(data: bytes) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(data.decode(), newline="")) if row]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("last_newline", [True, False])
@pytest.mark.parametrize("block", [7, 64, 1000])
def test_chunks_hold_every_record_once(newline, last_newline, block):
    # given: rows with quoted cells holding commas and newlines
    rows = [
        f'{i},"note {i}, with{newline.decode() if i % 5 == 0 else ""} text",{i * 0.5}'.encode() for i in range(200)
    ]
    data = newline.join(rows) + (newline if last_newline else b"")

    # when
    chunks = csv_chunks(blocks(data, block), start=0, chunk_bytes=300)

    # then: contiguous ranges that end at record ends, whose records together are the input's, in order
    assert len(chunks) > 5
    assert chunks[0].start == 0 and chunks[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:], strict=False))
    pieces = [records(data[c.start : c.end]) for c in chunks]
    assert [row for piece in pieces for row in piece] == records(data)
    assert [c.n_rows for c in chunks] == [len(piece) for piece in pieces]
    assert [c.first_row for c in chunks] == [sum(c.n_rows for c in chunks[:i]) for i in range(len(chunks))]


def test_blank_lines_are_no_rows():
    counter = RecordCounter()
    counter.feed(b"1,2\n\n3,4\r\n\r\n5,6")
    assert counter.finish() == 3


def test_header_is_read_and_checked():
    text, columns, end = csv_header(b'a, b,"c"\r\n1,2,3\n')
    assert (text, columns, end) == ('a, b,"c"', ["a", "b", "c"], 10)
