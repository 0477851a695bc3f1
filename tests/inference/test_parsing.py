"""Request bodies to feature matrices and predictions back to CSV: pure, no model, no database."""

import csv
import io
import json

import numpy as np
import pytest

from core.errors import ApplicationError
from core.tabular import TableError, feature_matrix, read_csv
from inference.parsing import SMALL_CSV_BYTES, features, float_lines, float_texts, parse_csv, parse_json, write_csv

COLUMNS = ["a", "b"]


def test_a_small_csv_and_a_large_one_give_the_same_matrix():
    # given: the same rows, once under and once over the size where pandas takes over
    rows = "".join(f"{i},{i / 2},x{i}\n" for i in range(8000))
    large = ("a,b,note\n" + rows).encode()
    small = ("a,b,note\n" + rows[:200]).encode()
    assert len(small) < SMALL_CSV_BYTES < len(large)

    # when
    small_X = features(parse_csv(small, max_rows=10_000), COLUMNS)
    large_X = features(parse_csv(large, max_rows=10_000), COLUMNS)

    # then
    assert small_X.dtype == large_X.dtype == np.float32
    np.testing.assert_array_equal(small_X, large_X[: len(small_X)])
    assert large_X.shape == (8000, 2)


def test_columns_are_taken_by_name_and_extra_ones_ignored():
    # when
    X = features(parse_csv(b"target,b,a\n9,2,1\n9,4,3\n", max_rows=10), COLUMNS)

    # then
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_missing_columns_are_listed():
    # when
    with pytest.raises(TableError) as error:
        features(parse_csv(b"x\n1\n", max_rows=10), COLUMNS)

    # then
    assert error.value.code == "missing_columns"
    assert error.value.extra["missing_columns"] == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "row", "problem"),
    [
        (b"a,b\n1,2\n3,\n", 2, "is empty"),
        (b"a,b\n1,2\n3,4\nfive,6\n", 3, "'five' is not a number"),
        (b"a,b\n1,inf\n", 1, "not a finite number"),
        (b"a,b\n1,2\n1e39,2\n", 2, "not a finite number"),
    ],
)
@pytest.mark.parametrize("padding", [0, SMALL_CSV_BYTES], ids=["small-csv", "large-csv"])
def test_a_bad_cell_is_named_by_row_and_column(body, row, problem, padding):
    # given: the same rows, read by the small-CSV parser or, padded with good rows, by pandas
    body += b"1,2\n" * (padding // 4)

    # when
    with pytest.raises(TableError) as error:
        features(parse_csv(body, max_rows=10**6), COLUMNS)

    # then
    assert error.value.code == "bad_cell"
    assert error.value.extra["row"] == row
    assert problem in error.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1], [4, 3]]}},
        {"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4, "extra": "x"}]},
        {"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]},
        {"instances": [[1, 2], [3, 4]]},
        {"inputs": {"a": [1, 3], "b": [2, 4]}},
    ],
)
def test_mlflow_scoring_json_formats(body):
    # when
    X = features(parse_json(json.dumps(body).encode(), columns=COLUMNS, max_rows=10), COLUMNS)

    # then
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "not_json"),
        (b'{"instances": ' + b"[" * 100_000, "not_json"),
        (b'{"rows": []}', "bad_json"),
        (b'{"instances": [[1]]}', "bad_json"),
        (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}', "bad_json"),
        (b'{"dataframe_split": {"columns": 5, "data": [[1]]}}', "bad_json"),
        (b'{"dataframe_split": {"columns": "ab", "data": [[1, 2]]}}', "bad_json"),
        (b'{"dataframe_split": {"columns": {"a": 1, "b": 2}, "data": [[1, 2]]}}', "bad_json"),
        (b'{"dataframe_split": {"columns": ["a", null], "data": [[1, 2]]}}', "bad_json"),
        (b'{"instances": []}', "empty_file"),
    ],
)
def test_malformed_json_is_a_table_error(body, code):
    # when
    with pytest.raises(TableError) as error:
        parse_json(body, columns=COLUMNS, max_rows=10)

    # then
    assert error.value.code == code


def test_null_and_boolean_json_cells_are_refused():
    # given
    table = parse_json(
        b'{"dataframe_records": [{"a": 1, "b": null}, {"a": true, "b": 2}]}', columns=COLUMNS, max_rows=9
    )

    # when
    with pytest.raises(TableError) as error:
        features(table, COLUMNS)

    # then
    assert error.value.extra == {"column": "b", "row": 1}


@pytest.mark.parametrize(
    "body", [b"a,b\n" + b"1,2\n" * 6, b'{"instances": ' + json.dumps([[1, 2]] * 6).encode() + b"}"]
)
def test_more_rows_than_the_limit_is_too_large(body):
    # when
    with pytest.raises(ApplicationError) as error:
        parser = parse_json if body.startswith(b"{") else parse_csv
        parser(body, max_rows=5, **({"columns": COLUMNS} if parser is parse_json else {}))

    # then
    assert error.value.code == "too_large"
    assert error.value.extra == {"rows": 6, "max_rows": 5}


@pytest.mark.parametrize("body", [b"", b"\x00\x01", b"\xff\xfe", b"a,a\n1,2\n", b"a,b\n1,2,3\n"])
def test_what_is_not_csv_is_a_table_error(body):
    with pytest.raises(TableError):
        parse_csv(body, max_rows=10)


def test_csv_output_echoes_the_rows_and_neutralises_formulas():
    # given
    table = parse_csv(b"a,b,note\n-1.5,2,=HYPERLINK(1)\n3,4,@SUM(A1)\n5,6,+1-2\n7,8,-x\n", max_rows=10)

    # when
    text = write_csv(table, np.array([10.0, 20.5, 30.0, 40.0]))

    # then
    assert text.splitlines() == [
        "a,b,note,prediction",
        "-1.5,2,'=HYPERLINK(1),10.0",
        "3,4,'@SUM(A1),20.5",
        "5,6,'+1-2,30.0",
        "7,8,'-x,40.0",
    ]


def test_csv_output_quotes_line_breaks_and_neutralises_a_formula_on_any_line_of_a_cell():
    # given
    table = parse_json(
        json.dumps(
            {"dataframe_records": [{"a": 1, "note": "ok\r@SUM(A1)\n+x\r\n-1"}, {"a": -2, "note": "x\ny"}]}
        ).encode(),
        columns=["a"],
        max_rows=10,
    )

    # when
    text = write_csv(table, np.array([-1.0, 2.0]))

    # then: a bare CR never reaches the output unquoted, and reads back as the cells written
    assert text.splitlines(keepends=True)[0] == "a,note,prediction\n"
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["a", "note", "prediction"],
        ["1", "ok\r'@SUM(A1)\n'+x\r\n'-1", "-1.0"],
        ["-2", "x\ny", "2.0"],
    ]


def test_a_large_clean_csv_is_read_by_pyarrow_with_the_matrix_pandas_gives():
    # given: the same numbers, once clean and once with spaces after the commas
    rows = [(i, i / 3) for i in range(9000)]
    clean = ("a,b,when\n" + "".join(f"{a},{b!r},2024-01-01\n" for a, b in rows)).encode()
    spaced = ("a, b, when\n" + "".join(f"{a}, {b!r}, 2024-01-01\n" for a, b in rows)).encode()

    # when
    clean_table, spaced_table = parse_csv(clean, max_rows=10_000), parse_csv(spaced, max_rows=10_000)
    clean_X, spaced_X = features(clean_table, COLUMNS), features(spaced_table, COLUMNS)

    # then
    assert clean_table.arrow is not None and clean_table.frame is None  # no pandas on the fast path
    np.testing.assert_array_equal(clean_X, spaced_X)
    np.testing.assert_array_equal(clean_X, features(parse_csv(clean, max_rows=10_000), COLUMNS))
    np.testing.assert_array_equal(clean_X, feature_matrix(read_csv(clean), COLUMNS))
    np.testing.assert_array_equal(clean_X, np.array(rows, dtype=np.float32))
    assert clean_X.flags.c_contiguous and len(clean_table) == 9000


def test_a_large_csv_with_a_row_longer_than_the_header_is_refused():
    # given
    body = b"a,b\n" + b"1,2\n" * (SMALL_CSV_BYTES // 4) + b"1,2,3\n"

    # when / then
    with pytest.raises(TableError) as error:
        features(parse_csv(body, max_rows=10**6), COLUMNS)
    assert error.value.code == "not_csv"


def test_csv_output_of_a_large_body_echoes_its_rows():
    # given
    body = b"a,b,note\n" + b"1,2.5,x\n" * (SMALL_CSV_BYTES // 8 + 1)
    table = parse_csv(body, max_rows=10**6)

    # when
    lines = write_csv(table, np.zeros(len(table))).splitlines()

    # then
    assert lines[0] == "a,b,note,prediction" and lines[1] == "1,2.5,x,0.0" and len(lines) == len(table) + 1


def test_float_texts_are_pythons_repr():
    # given: predictions of every magnitude, float32 values widened, the boundaries of positional notation
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.standard_normal(20_000) * 10.0 ** rng.integers(-12, 20, 20_000),
            rng.normal(2000, 300, 5000).astype(np.float32).astype(np.float64),
            np.round(rng.standard_normal(5000) * 10.0 ** rng.integers(0, 17, 5000)),
            [0.0, -0.0, 1e-4, -1e-4, np.nextafter(1e-4, 0), 1e16, np.nextafter(1e16, 0), 5e-324, np.nan, np.inf],
        ]
    )

    # when
    texts = float_texts(values)

    # then: what /predict's CSV answer writes, value by value
    assert [text.decode() for text in texts] == [repr(value) for value in values.tolist()]
    first, second = values[:2].tolist()
    assert float_lines(values[:2]) == f"{first!r}\n{second!r}\n".encode()
