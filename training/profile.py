"""The reference profile of a training window: per feature, quantile bins and the share of rows in each. Pure.

Serving compares the inputs it logs with this profile (inference's drift report): a feature whose live values
fall into the bins in proportions far from the training window's has drifted. The bins are the training
window's deciles, so each holds about a tenth of its rows; a feature with few distinct values (a weekday, a
mostly-zero rainfall) gets fewer, wider bins, since repeated edges collapse into one.

Bin ``i`` holds the values ``v`` with ``edges[i - 1] <= v < edges[i]`` (``numpy.searchsorted(edges, v,
side="right")``): bin 0 is everything below the first edge, the last bin everything from the last edge up.
"""

from typing import Any

import numpy as np

from core.contract import PROFILE_FORMAT

DEFAULT_BINS = 10


def feature_profile(X: np.ndarray, feature_names: list[str], *, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The JSON-able profile of the rows ``X`` (one column per name in ``feature_names``).

    Returns:
        ``{"format", "n_rows", "bins", "features": {name: {"edges", "shares", "mean", "std", "min", "max"}}}``;
        ``shares`` has one entry more than ``edges`` and sums to 1.
    """
    if X.ndim != 2 or X.shape[1] != len(feature_names) or len(X) == 0:
        raise ValueError(f"Expected a non-empty matrix with {len(feature_names)} columns, got {X.shape}.")
    inner = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    features = {}
    for j, name in enumerate(feature_names):
        column = np.asarray(X[:, j], dtype=np.float64)
        edges = np.unique(np.quantile(column, inner))
        counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
        features[name] = {
            "edges": edges.tolist(),
            "shares": (counts / len(column)).tolist(),
            "mean": float(column.mean()),
            "std": float(column.std()),
            "min": float(column.min()),
            "max": float(column.max()),
        }
    return {"format": PROFILE_FORMAT, "n_rows": int(len(X)), "bins": bins, "features": features}
