"""Large scoring JSON bodies are counted as their tokens stream by: over a cap, refused before anything is built."""

import json
import tracemalloc

import pytest

from core.errors import TooLarge
from core.tabular import TableError
from inference import parsing
from inference.parsing import STREAM_CHECK_BYTES, parse_json

ROWS = 60_000  # ~360 KB of [1,2] rows: over STREAM_CHECK_BYTES, and 60 times the row cap below


def bodies(n_rows: int) -> dict[str, bytes]:
    rows = [[1, 2]] * n_rows
    return {
        "instances": json.dumps({"instances": rows}).encode(),
        "inputs": json.dumps({"inputs": rows}).encode(),
        "dataframe_records": json.dumps({"dataframe_records": [{"a": 1, "b": 2}] * n_rows}).encode(),
        "dataframe_split": json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}}).encode(),
        "column lists": json.dumps({"inputs": {"a": [1] * n_rows, "b": [2] * n_rows}}).encode(),
    }


@pytest.fixture
def loads_calls(monkeypatch):
    """Every body ``json.loads`` builds in ``inference.parsing``: a refusal before building leaves it empty."""
    calls = []
    real = json.loads

    def spy(raw, *args, **kwargs):
        calls.append(len(raw))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(parsing.json, "loads", spy)
    return calls


@pytest.mark.parametrize("shape", bodies(1).keys())
def test_a_large_body_over_the_row_cap_is_refused_before_it_is_parsed(shape, loads_calls):
    # given
    raw = bodies(ROWS)[shape]
    assert len(raw) > STREAM_CHECK_BYTES

    # when
    with pytest.raises(TooLarge) as error:
        parse_json(raw, columns=["a", "b"], max_rows=1000, max_columns=10)

    # then: the same code and extra as the cap after parsing, the count stopped at the first row past the cap
    assert error.value.code == "too_large"
    assert error.value.extra == {"rows": 1001, "max_rows": 1000}
    assert error.value.message == "Too many rows: more than 1000; at most 1000 per request."
    assert loads_calls == []


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": [{f"c{i}": 1 for i in range(20)}] * 30_000},
        {"instances": [list(range(20))] * 30_000},
        {"dataframe_split": {"columns": [f"c{i}" for i in range(30_000)], "data": []}},
        {"inputs": {f"c{i}": [1] for i in range(30_000)}},
    ],
    ids=["record", "row", "columns", "column lists"],
)
def test_a_large_body_wider_than_the_column_cap_is_refused_before_it_is_parsed(body, loads_calls):
    # when
    with pytest.raises(TableError) as error:
        parse_json(json.dumps(body).encode(), columns=["a", "b"], max_rows=1000, max_columns=10)

    # then
    assert error.value.code == "too_many_columns"
    assert error.value.extra == {"columns": 11, "max_columns": 10}
    assert loads_calls == []


def test_refusing_a_2_million_row_body_allocates_a_few_mb_not_hundreds():
    # given: 24 MB, as the body that took 329 MB to refuse when it was parsed first
    raw = b'{"instances": [' + b",".join([b"[1,2,3,4,5]"] * 2_000_000) + b"]}"

    # when
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            parse_json(raw, columns=["a", "b", "c", "d", "e"], max_rows=100_000, max_columns=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then: allocations are counted, not timed: the same on every run
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.1f} MB"


def test_a_large_body_within_the_caps_is_parsed_once_and_read_as_before(loads_calls):
    # given: as many values as the largest request allowed, so the token walk is skipped
    raw = bodies(ROWS)["dataframe_split"]

    # when
    table = parse_json(raw, columns=["a", "b"], max_rows=ROWS, max_columns=10)

    # then
    assert len(table) == ROWS and table.columns == ["a", "b"]
    assert loads_calls == [len(raw)]


def test_a_large_body_past_the_value_budget_but_within_the_caps_is_walked_then_parsed(loads_calls):
    # given: more commas than max_rows x columns (a third column the model ignores), rows within the cap
    raw = json.dumps({"instances": [[1, 2, 3]] * ROWS}).encode()

    # when
    with pytest.raises(TableError) as error:
        parse_json(raw, columns=["a", "b"], max_rows=ROWS, max_columns=10)

    # then: nothing refused by the walk; the parser says what is wrong, as it did
    assert error.value.code == "bad_json"
    assert loads_calls == [len(raw)]


def test_a_large_invalid_body_is_left_to_the_parser_to_describe(loads_calls):
    # given
    raw = b'{"instances": [' + b"[1,2]," * ROWS + b"oops]}"

    # when
    with pytest.raises(TableError) as error:
        parse_json(raw, columns=["a", "b"], max_rows=ROWS + 1, max_columns=10)

    # then
    assert error.value.code == "not_json"
