"""Values quoted in error messages are bounded: a huge bad cell never makes a huge answer."""

import numpy as np
import pytest

from core.errors import quoted
from core.tabular import TableError, feature_matrix, read_csv


def test_a_short_value_is_quoted_as_its_repr():
    assert quoted("wet") == "'wet'"
    assert quoted(1.5) == "1.5"


def test_a_long_value_is_cut_to_100_characters_and_says_how_long_it_was():
    # when
    text = quoted("x" * 1_000_000)

    # then
    assert text == repr("x" * 100) + "… (1000000 characters)"


def test_a_megabyte_bad_cell_makes_a_short_error():
    # given
    frame = read_csv(b"a,b\n1,2\n" + b"1," + b"w" * 1_000_000 + b"\n")

    # when
    with pytest.raises(TableError) as error:
        feature_matrix(frame, ["a", "b"])

    # then
    assert error.value.code == "bad_cell"
    assert len(error.value.message) < 300
    assert error.value.extra == {"column": "b", "row": 2, "bad_rows": 1}
    assert np.isfinite(feature_matrix(frame.head(1), ["a", "b"])).all()
