"""A wrong file is refused with what it most likely is and what to do: the common mistakes of a spreadsheet user."""

import io
import zipfile

import pytest

from core.csvstream import CsvStreamDigest
from core.tabular import TableError, decode_text, read_csv, require_columns


def xlsx_bytes() -> bytes:
    # An .xlsx is a zip archive; its first bytes are all the hint reads.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


CSV = "timestamp,temperature,target\n2024-01-01,3.5,1.0\n"

WRONG_FILES = {
    "xlsx": (xlsx_bytes(), "Excel workbook (.xlsx)"),
    "xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "old Excel workbook (.xls)"),
    "utf-16 with bom": (CSV.encode("utf-16"), "UTF-16"),
    "utf-16 without bom": (CSV.encode("utf-16-le"), "UTF-16LE"),
    "windows-1252": ("timestamp,température,target\n2024-01-01,3.5,1.0\n".encode("cp1252"), "WINDOWS-1252"),
    "gzip": (b"\x1f\x8b\x08\x00" + bytes(32), "gzip archive"),
}


@pytest.mark.parametrize("content,named", WRONG_FILES.values(), ids=WRONG_FILES.keys())
def test_a_file_that_is_not_utf8_csv_is_named_with_what_to_do(content, named):
    # when: read whole (prediction) and streamed in chunks (an upload)
    with pytest.raises(TableError) as whole:
        decode_text(content)
    digest = CsvStreamDigest()
    with pytest.raises(TableError) as streamed:
        for start in range(0, len(content), 7):
            digest.update(content[start : start + 7])
        digest.finish()

    # then: both say what the file is and how to make it CSV
    for refused in (whole.value, streamed.value):
        assert refused.code == "not_csv"
        assert named in refused.message and refused.extra["hint"] in refused.message
        assert "save it" in refused.extra["hint"] or "decompress" in refused.extra["hint"]


@pytest.mark.parametrize("delimiter,name", [(";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")])
def test_a_file_separated_by_another_delimiter_is_told_to_use_commas(delimiter, name):
    # given
    frame = read_csv(CSV.replace(",", delimiter).encode())

    # when
    with pytest.raises(TableError) as refused:
        require_columns(frame.columns, ["timestamp", "target"])

    # then
    assert refused.value.code == "missing_columns"
    assert refused.value.message.startswith("Missing columns: timestamp, target. ")
    assert f"one column holding {name}" in refused.value.extra["hint"]


def test_a_header_with_other_capitals_names_each_column_it_meant():
    # given
    frame = read_csv(b"Timestamp,temperature, TARGET\n2024-01-01,3.5,1.0\n")

    # when
    with pytest.raises(TableError) as refused:
        require_columns(frame.columns, ["timestamp", "temperature", "target"])

    # then
    assert refused.value.extra["missing_columns"] == ["timestamp", "target"]
    assert refused.value.extra["hint"] == (
        "Column names are case-sensitive: the file has 'Timestamp' for 'timestamp', 'TARGET' for 'target'."
    )


def test_a_column_simply_missing_gets_no_hint():
    with pytest.raises(TableError) as refused:
        require_columns(["timestamp", "temperature"], ["timestamp", "target"])
    assert refused.value.message == "Missing column: target." and "hint" not in refused.value.extra
