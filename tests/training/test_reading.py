"""The worker's lean read gives what ``ml.prepare_data`` gives on the whole file: the same arrays, or the same
error naming the same column and row, wherever in the file the problem is."""

import io

import numpy as np
import pytest

from core.tabular import TableError, read_csv
from tests.factories import csv_bytes, weather_frame
from training import ml, reading


def prepared(content: bytes) -> ml.PreparedData:
    return ml.prepare_data(read_csv(content), target="target", timestamp="timestamp")


def read(content: bytes) -> ml.PreparedData:
    return reading.training_data_read(io.BytesIO(content), target="target", timestamp="timestamp")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    # Blocks of 50 rows, so a file of a few hundred rows crosses several block boundaries.
    monkeypatch.setattr(reading, "READ_CHUNK_ROWS", 50)
    monkeypatch.setattr(reading, "LOCATE_CHUNK_ROWS", 50)


def test_the_lean_read_equals_the_checks_on_the_whole_file():
    # given: shuffled rows, some without a target
    frame = weather_frame(300).sample(frac=1, random_state=1).reset_index(drop=True)
    frame.loc[[3, 77, 160], "target"] = None
    content = csv_bytes(frame)

    # when
    expected, got = prepared(content), read(content)

    # then
    assert got.X.dtype == np.float32 and got.X.flags["C_CONTIGUOUS"]
    assert np.array_equal(got.X, expected.X) and np.array_equal(got.y, expected.y)
    assert got.timestamps.equals(expected.timestamps)
    assert got.feature_names == expected.feature_names and got.dropped_missing_target == 3


def with_cell(row: int, column: str, value) -> bytes:
    frame = weather_frame(300).astype({column: object})
    frame.loc[row - 1, column] = value
    return csv_bytes(frame)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(with_cell(237, "humidity_pct", "wet"), id="non-number feature"),
        pytest.param(with_cell(120, "temperature_c", ""), id="empty feature"),
        pytest.param(with_cell(299, "temperature_c", "1e39"), id="feature beyond float32"),
        pytest.param(with_cell(180, "target", "lots"), id="non-number target"),
        pytest.param(with_cell(61, "target", "inf"), id="infinite target"),
        pytest.param(with_cell(250, "timestamp", "someday"), id="bad timestamp"),
        pytest.param(csv_bytes(weather_frame(300).drop(columns=["target"])), id="missing target"),
        pytest.param(csv_bytes(weather_frame(5)), id="too few rows"),
        pytest.param(csv_bytes(weather_frame(0)), id="no rows"),
        pytest.param(b"timestamp,a,target\n2024-01-01,1,2\n2024-01-02,1,2,3\n", id="row longer than the header"),
    ],
)
def test_a_problem_anywhere_is_named_as_the_checks_name_it(content):
    # given
    with pytest.raises(TableError) as whole:
        prepared(content)

    # when
    with pytest.raises(TableError) as lean:
        read(content)

    # then
    assert (lean.value.code, lean.value.message) == (whole.value.code, whole.value.message)
    assert {key: lean.value.extra.get(key) for key in ("column", "row")} == {
        key: whole.value.extra.get(key) for key in ("column", "row")
    }


def test_a_bad_cell_in_a_row_without_target_is_not_an_error_as_in_the_checks():
    # given
    frame = weather_frame(300).astype({"humidity_pct": object})
    frame.loc[200, ["humidity_pct", "target"]] = ["wet", None]
    content = csv_bytes(frame)

    # when
    got = read(content)

    # then
    assert len(got.y) == len(prepared(content).y) == 299
