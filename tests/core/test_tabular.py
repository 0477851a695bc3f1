import numpy as np
import pandas as pd
import pytest

from core.tabular import TableError, feature_matrix, read_csv


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty_file"),
        (b"   \n\n", "empty_file"),
        (b"\xff\xfe\x00a\x00b", "not_csv"),
        (b"a,b\n1,2\x00\n", "not_csv"),
        (b'a,b\n"1,2\n', "not_csv"),
        (b"a,b\n1,2,3\n", "not_csv"),
        (b"a,b,c\n1,2,3\n4,5,6,7\n", "not_csv"),
        (b"a,a\n1,2\n", "bad_header"),
        (b"a,,c\n1,2,3\n", "bad_header"),
    ],
    ids=[
        *("empty", "blank", "utf16", "nul-byte", "unclosed-quote"),
        *("long-first-row", "long-row", "duplicate-column", "unnamed-column"),
    ],
)
def test_read_csv_refuses_what_is_not_a_csv_table(raw, code):
    # when
    with pytest.raises(TableError) as caught:
        read_csv(raw)

    # then
    assert caught.value.code == code


def test_read_csv_accepts_a_byte_order_mark_and_padded_names():
    # given
    raw = "\ufeff a , b\n1,2\n".encode()

    # when
    frame = read_csv(raw)

    # then
    assert list(frame.columns) == ["a", "b"]


def test_feature_matrix_selects_columns_in_the_requested_order_as_float32():
    # given
    frame = pd.DataFrame({"b": [1, 2], "a": [3.5, 4.5], "target": [0, 0]})

    # when
    X = feature_matrix(frame, ["a", "b"])

    # then
    assert X.dtype == np.float32 and X.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(X, [[3.5, 1], [4.5, 2]])


@pytest.mark.parametrize("bad", ["inf", "-inf", "", "abc"])
def test_feature_matrix_refuses_non_finite_or_empty_cells(bad):
    # given
    frame = read_csv(f"a,b\n1,2\n3,{bad}\n".encode())

    # when
    with pytest.raises(TableError) as caught:
        feature_matrix(frame, ["a", "b"])

    # then
    assert caught.value.extra["column"] == "b"
    assert caught.value.extra["row"] == 2
