"""Row and column caps on a scoring JSON body, checked as its tokens stream by, before anything is built. Pure.

``json.loads`` of a 2M-row, 24 MB ``instances`` body took 3.8 s and 329 MB before the row cap could refuse it
(15M rows: 17.9 s, 2.3 GB). Walking the body's tokens with ijson (yajl's C parser) builds nothing, and stops at the
first row past the cap: the same body is refused after ``max_rows`` rows, whatever follows them. The walk costs
~0.4 µs a value (Python sees every token), ~60% more than ``json.loads``, so ``inference.parsing`` walks only a
body that may hold more values than the largest request allowed.
"""

from typing import Any

import ijson

from core.tabular import check_column_count

# Below this many bytes a body is parsed whole and its caps checked after (json.loads of 256 KB takes a few ms and
# a few MB), without even counting its commas: the one-row request is the hot path.
STREAM_CHECK_BYTES = 256 * 1024


def json_caps_check(raw: bytes, *, max_rows: int, max_columns: int | None, too_many_rows) -> None:
    """Refuse a body holding an array of more than ``max_rows`` rows, or anything else wider than ``max_columns``.

    The shapes are MLflow's: rows are the arrays one level down (``instances: [...]``) and the arrays two levels
    down other than ``columns`` (``dataframe_split.data``, a column's values in ``inputs: {column: [...]}``); every
    other array or object (a row, a record, the column names, a cell) may hold at most ``max_columns`` items.
    What the body says is checked later, by the parser; this only keeps it from being built when it is too big.

    Raises:
        TooLarge: from ``too_many_rows(rows, max_rows)``; ``rows`` is where the count stopped (``max_rows + 1``).
        TableError: ``too_many_columns`` (as ``core.tabular.check_column_count`` says it).
    """
    try:
        _walk(raw, max_rows, max_columns, too_many_rows)
    except (ijson.JSONError, UnicodeDecodeError):
        # Not JSON (or not UTF-8): the parser says so, and where.
        return


def _walk(raw: bytes, max_rows: int, max_columns: int | None, too_many_rows) -> None:
    wide = max_columns if max_columns is not None else max_rows
    # One entry per open container: [is an array, items so far, most items allowed, is an array of rows].
    stack: list[list[Any]] = []
    key = None
    for event, value in ijson.basic_parse(raw):
        if event == "end_map" or event == "end_array":
            stack.pop()
            continue
        if stack:
            parent = stack[-1]
            # A map counts its keys; an array, the values that start in it.
            if parent[0] != (event == "map_key"):
                parent[1] += 1
                if parent[1] > parent[2]:
                    if parent[3]:
                        raise too_many_rows(parent[1], max_rows)
                    check_column_count(parent[1], max_columns)
        if event == "map_key":
            key = value
        elif event == "start_array":
            depth = len(stack)
            rows = depth <= 1 or (depth == 2 and not stack[-1][0] and key != "columns")
            stack.append([True, 0, max_rows if rows else wide, rows])
        elif event == "start_map":
            stack.append([False, 0, wide, False])
