"""Measuring a CSV as it streams: rows, checksum, size ceiling and encoding, whatever the chunk boundaries."""

import hashlib

import pytest

from core.csvstream import CsvStreamDigest
from core.errors import TooLarge
from core.tabular import TableError


def digest_of(content: bytes, chunk: int, max_bytes: int | None = None) -> CsvStreamDigest:
    digest = CsvStreamDigest(max_bytes=max_bytes)
    for start in range(0, len(content), chunk):
        digest.update(content[start : start + chunk])
    digest.finish()
    return digest


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 16])
@pytest.mark.parametrize(
    ("content", "rows"),
    [
        (b"a,b\n1,2\n3,4\n", 2),
        (b"a,b\n1,2\n3,4", 2),  # no newline at the end
        (b"a,b\r\n1,2\r\n\r\n3,4\r\n\r\n", 2),  # CRLF, blank lines are no rows
        (b"\xef\xbb\xbfa,b\n\n\n1,2\n", 1),  # BOM, blank lines in a row
        (b'a,b\n"x\ny",2\n"say ""hi""\n",4\n', 2),  # newlines and doubled quotes inside quotes
        (b"a\n", 0),
    ],
)
def test_rows_are_counted_as_the_parser_sees_them(content, rows, chunk):
    # when
    digest = digest_of(content, chunk)

    # then
    assert digest.n_rows == rows
    assert digest.size_bytes == len(content) and digest.sha256 == hashlib.sha256(content).hexdigest()


def test_a_stream_over_the_ceiling_stops_at_the_chunk_that_crosses_it():
    # given
    digest = CsvStreamDigest(max_bytes=10)
    digest.update(b"a,b\n1,2\n")

    # when / then
    with pytest.raises(TooLarge) as refused:
        digest.update(b"3,4\n")
    assert refused.value.code == "too_large" and refused.value.extra == {"max_bytes": 10}


@pytest.mark.parametrize("chunk", [1, 4, 1 << 16])
def test_a_byte_that_is_not_utf8_is_named_by_offset_across_chunk_boundaries(chunk):
    # given: a two-byte character cut short at offset 9
    content = b"a,b\n\xc3\xa9,2\n\xc3,4\n"

    # when / then
    with pytest.raises(TableError) as refused:
        digest_of(content, chunk)
    assert refused.value.code == "not_csv" and refused.value.extra["offset"] == 9


def test_nul_bytes_and_empty_files_are_refused():
    with pytest.raises(TableError) as binary:
        digest_of(b"a,b\n1,\x002\n", 4)
    with pytest.raises(TableError) as empty:
        digest_of(b" \n\n", 4)
    assert binary.value.code == "not_csv" and empty.value.code == "empty_file"
