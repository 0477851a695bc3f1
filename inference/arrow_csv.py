"""Large CSV bodies through pyarrow's reader, for the common case of clean numeric feature columns. Pure.

pandas' reader plus a per-column ``to_numeric`` took ~45 ms of a 10k-row, 8-column batch (bench/README.md); pyarrow
parses it into typed columns in a few ms, and a column that is already int or float without nulls needs no
per-cell check. Anything else (a row of the wrong length, an empty or non-numeric cell, a value outside float32)
goes back to ``core.tabular``, the checks training uses, so every error names its column and row as before.
"""

import io
from typing import Any

import numpy as np


def arrow_read(raw: bytes) -> Any | None:
    """The CSV as a ``pyarrow.Table`` with typed columns, or ``None`` if pyarrow cannot read it as it stands."""
    try:
        import pyarrow as pa
        from pyarrow import csv
    except ImportError:
        return None
    try:
        return csv.read_csv(
            io.BytesIO(raw),
            read_options=csv.ReadOptions(use_threads=True),
            # Only what `core.tabular` counts as a missing value becomes null here; "nan" and friends stay text
            # (and so go to the slow path, which refuses them by name).
            convert_options=csv.ConvertOptions(null_values=[""], strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None


def numeric_matrix(table: Any, positions: list[int]) -> np.ndarray | None:
    """The columns at ``positions`` as a C-ordered float32 matrix, or ``None`` unless every one is an int or float
    column without nulls whose values are finite in float32."""
    import pyarrow.types as types

    X = np.empty((table.num_rows, len(positions)), dtype=np.float32)
    for j, position in enumerate(positions):
        column = table.column(position)
        if column.null_count or not (types.is_integer(column.type) or types.is_floating(column.type)):
            return None
        with np.errstate(over="ignore"):
            X[:, j] = column.to_numpy()
    if not np.isfinite(X).all():
        return None
    return X
