"""Splitting a CSV into chunks of whole records: no row lost or doubled, quotes, CRLF, a last line without newline."""

import csv
import io

import pytest

from inference.batch import objects
from inference.batch.sources import RecordCounter, csv_chunks, csv_header, csv_plan, local_plan


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


@pytest.mark.django_db
def test_an_upload_is_planned_from_its_local_copy_as_from_storage(tmp_path, settings):
    # given: a CSV with quoted newlines and blank lines, on local disk and stored
    rows = [f'{i},"line {i}{chr(10) if i % 7 == 0 else ""} end",{i}'.encode() for i in range(3000)]
    data = b"a,b,c\n" + b"\n".join(rows[:1500]) + b"\n\n" + b"\n".join(rows[1500:]) + b"\n"
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    objects.put_file("batch/test/input.csv", str(path))

    # when: the web process plans it from its copy
    local = local_plan(str(path), input_format="csv", chunk_bytes=5000)

    # then: the chunks a worker reading the stored object would make
    stored = csv_plan("batch/test/input.csv", header_end=len(b"a,b,c\n"), chunk_bytes=5000)
    assert len(local) > 5
    assert local == stored
    assert sum(chunk.n_rows for chunk in local) == 3000
