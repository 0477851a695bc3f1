"""Drift of logged inputs from a training profile: a population stability index per feature. Pure: no Django.

The profile (``training/profile.py``, ``core.contract.PROFILE_FILE``) holds each feature's decile edges over the
training window and the share of training rows in each bin. The same edges bin the logged inputs, and

    PSI = sum over bins of (live share - training share) * ln(live share / training share)

with empty bins counted as a share of ``SHARE_FLOOR`` so the logarithm stays finite. A PSI under 0.1 is usually
read as no change and over 0.25 as a major shift; MDS flags a feature above ``MDS_DRIFT_PSI_THRESHOLD`` (0.2).
Under the null hypothesis (live rows drawn from the training distribution) the PSI of n rows in k bins is about
(k - 1) / n, hence ``MDS_DRIFT_MIN_ROWS``: fewer rows give no verdict.
"""

from typing import Any

import numpy as np

SHARE_FLOOR = 1e-4


def bin_counts(edges: list[float], values: np.ndarray) -> np.ndarray:
    """How many ``values`` fall in each of the profile's bins (``len(edges) + 1`` of them)."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")
    return np.bincount(index, minlength=len(edges) + 1)


def population_stability_index(expected_shares: list[float] | np.ndarray, counts: np.ndarray) -> float:
    """PSI of observed bin ``counts`` against the training window's ``expected_shares``."""
    expected = np.maximum(np.asarray(expected_shares, dtype=np.float64), SHARE_FLOOR)
    total = counts.sum()
    if total == 0:
        return 0.0
    actual = np.maximum(counts / total, SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_summary(
    profile: dict[str, Any], counts: dict[str, np.ndarray], n_rows: int, *, threshold: float, min_rows: int
) -> dict[str, Any]:
    """Per feature of ``profile`` found in ``counts``: its PSI and whether it exceeds ``threshold``.

    ``drifted`` is ``None`` (no verdict) for fewer than ``min_rows`` rows.
    """
    enough = n_rows >= min_rows
    features = {}
    for name, reference in profile["features"].items():
        if name not in counts:
            continue
        observed = counts[name]
        psi = population_stability_index(reference["shares"], observed)
        features[name] = {
            "psi": round(psi, 6),
            "drifted": (psi > threshold) if enough else None,
            "expected_shares": [round(share, 6) for share in reference["shares"]],
            "live_shares": [round(float(c), 6) for c in (observed / max(observed.sum(), 1))],
        }
    drifted = [name for name, feature in features.items() if feature["drifted"]]
    return {
        "n_rows": n_rows,
        "threshold": threshold,
        "min_rows": min_rows,
        "drifted": (bool(drifted) if features else None) if enough else None,
        "drifted_features": drifted,
        "features": features,
    }
