"""Split-conformal prediction intervals: what a version keeps from its calibration, and the bounds it gives.

Pure numpy, shared by training (which calibrates and measures the intervals on the holdout) and inference (which
answers ``/predict?interval=``), so both compute a bound with the same arithmetic.

A calibration keeps the sorted scores of the calibration rows, never seen by the forest: ``|y - ŷ|`` for the
``absolute`` method, ``|y - ŷ| / (s + floor)`` for the ``scaled`` one, where ``s`` is the spread (population
standard deviation) of the trees' predictions for the row and ``floor`` keeps rows where the trees agree from
getting an empty interval. For a level ``a`` the half-width is the ``ceil((n + 1) a)``-th smallest of the ``n``
scores (the finite-sample correction of split conformal prediction), times ``s + floor`` for ``scaled``. A level
above ``n / (n + 1)`` would need a bound beyond the largest score: it is refused rather than answered with an
infinite or made-up bound.
"""

import json
import math
from dataclasses import dataclass

import numpy as np

from .errors import ApplicationError

ABSOLUTE, SCALED = "absolute", "scaled"
METHODS = (ABSOLUTE, SCALED)
# The levels training measures on the holdout and records as run metrics.
LEVELS = (0.8, 0.9, 0.95)
FORMAT_VERSION = 1


def level_key(level: float) -> str:
    """``0.9`` -> ``"90"``: the suffix of the run metrics for a level."""
    return f"{level * 100:g}".replace(".", "_")


@dataclass(frozen=True)
class Calibration:
    """The sorted calibration scores of one version and how they turn into bounds (see the module docstring)."""

    method: str
    scores: np.ndarray
    scale_floor: float = 0.0

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def max_level(self) -> float:
        """The highest level the scores can answer: ``n / (n + 1)``."""
        return self.n / (self.n + 1)

    @property
    def needs_spread(self) -> bool:
        return self.method == SCALED

    def quantile(self, level: float) -> float:
        """The conformal quantile of the scores at ``level`` (in (0, 1)).

        Raises:
            ApplicationError: ``invalid_input`` when ``level`` exceeds ``max_level``.
        """
        # The tolerance keeps float noise in (n + 1) * level (0.9 * 10 = 9.000000000000002) from adding a rank.
        rank = max(1, math.ceil((self.n + 1) * level - 1e-9))
        if rank > self.n:
            raise ApplicationError(
                f"An interval at level {level:g} needs more calibration rows than the {self.n} this version has;"
                f" the highest level it can answer is {self.max_level:.6g}.",
                code="invalid_input",
                extra={"interval": level, "max_level": self.max_level, "calibration_rows": self.n},
            )
        return float(self.scores[rank - 1])

    def half_width(self, level: float, spread: np.ndarray | None = None) -> np.ndarray | np.float64:
        """Half the interval's width per row (one for all rows with ``absolute``); ``spread`` (the trees' standard
        deviation) is needed for ``scaled``."""
        q = self.quantile(level)
        if self.method == ABSOLUTE:
            return np.float64(q)
        if spread is None:
            raise ValueError("the scaled method needs the spread of the trees' predictions")
        return q * (np.asarray(spread, dtype=np.float64) + self.scale_floor)

    def to_json(self, **extra) -> bytes:
        """The file a version carries (``core.contract.INTERVALS_FILE``); ``extra`` is kept for people to read."""
        quantiles = {level_key(level): self.quantile(level) for level in LEVELS if level <= self.max_level}
        document = {
            "format": FORMAT_VERSION,
            "method": self.method,
            "scale_floor": self.scale_floor,
            "n": self.n,
            "quantiles": quantiles,
            **extra,
            "scores": self.scores.tolist(),
        }
        return json.dumps(document, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Calibration":
        """Read a calibration file back.

        Raises:
            ValueError: the file is not a calibration this code can use.
        """
        document = json.loads(raw)
        if document.get("format") != FORMAT_VERSION or document.get("method") not in METHODS:
            raise ValueError(f"not a calibration file of format {FORMAT_VERSION}")
        scores = np.sort(np.asarray(document["scores"], dtype=np.float64))
        scale_floor = float(document.get("scale_floor", 0.0))
        if scores.size == 0 or not np.isfinite(scores).all() or scores[0] < 0 or not scale_floor >= 0:
            raise ValueError("the calibration scores must be finite, non-negative and not empty")
        return cls(method=document["method"], scores=scores, scale_floor=scale_floor)


def calibration_scores(residuals: np.ndarray, spread: np.ndarray | None = None, scale_floor: float = 0.0):
    """Sorted conformal scores: absolute residuals, divided by ``spread + scale_floor`` when a spread is given."""
    scores = np.abs(np.asarray(residuals, dtype=np.float64))
    if spread is not None:
        scores = scores / (np.asarray(spread, dtype=np.float64) + scale_floor)
    return np.sort(scores)


def coverage_and_width(
    calibration: Calibration, y: np.ndarray, y_pred: np.ndarray, spread: np.ndarray | None, level: float
) -> dict[str, float]:
    """Share of ``y`` inside the intervals at ``level`` around ``y_pred``, and their mean width."""
    half = np.broadcast_to(calibration.half_width(level, spread), np.shape(y_pred))
    inside = np.abs(np.asarray(y, dtype=np.float64) - y_pred) <= half
    return {"coverage": float(inside.mean()), "mean_width": float(2 * half.mean())}
