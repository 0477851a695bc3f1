"""The evidence of a live trial, from paired errors: pure numpy, no Django.

Both versions scored the same rows and feedback gave the actuals, so each row gives a pair of errors. The test is a
paired bootstrap on the mean difference of absolute errors (challenger minus champion: the MAE): rows are
resampled with replacement ``resamples`` times, and the central ``confidence`` interval of the resampled means
decides. Entirely below zero: the challenger is better; entirely above: worse; straddling zero: no verdict yet.
The squared errors' difference (RMSE) is reported beside it with a normal-approximation interval. Pairing removes
the rows' own difficulty from the comparison, which is why a few hundred rows tell apart versions whose unpaired
MAEs overlap.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

BETTER, WORSE, UNDECIDED = "better", "worse", "indistinguishable"
PROMOTE, ROLLBACK = "promote", "rollback"


@dataclass(frozen=True)
class Rules:
    """What a trial decides by: its confidence and thresholds (``Trial``'s fields)."""

    confidence: float = 0.95
    min_paired_rows: int = 200
    canary: bool = False
    guard_error_factor: float = 1.5
    guard_error_rate: float = 0.05
    guard_min_rows: int = 36


def bootstrap_difference(
    differences: np.ndarray, *, confidence: float, resamples: int, seed: int = 0
) -> dict[str, float]:
    """The mean of ``differences`` and the central ``confidence`` interval of its paired bootstrap.

    Resamples are drawn in chunks, so memory stays at about 100 x ``len(differences)`` indices.
    """
    differences = np.asarray(differences, dtype=np.float64)
    n = len(differences)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = 100
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        means[start : start + size] = differences[rng.integers(0, n, size=(size, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"mean": float(differences.mean()), "low": float(low), "high": float(high)}


def normal_difference(differences: np.ndarray, *, confidence: float) -> dict[str, float]:
    """The mean of ``differences`` and its normal-approximation interval: reported, never decided on (squared
    errors are heavy-tailed; the decision is the bootstrap's on absolute errors, and costs one bootstrap)."""
    from statistics import NormalDist

    n = len(differences)
    mean = float(np.mean(differences))
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * float(np.std(differences, ddof=1)) / np.sqrt(n)
    return {"mean": mean, "low": float(mean - half), "high": float(mean + half)}


def verdict(interval: dict[str, float]) -> str:
    """``better`` (the challenger's loss is lower: the interval is below zero), ``worse`` or ``indistinguishable``."""
    if interval["high"] < 0:
        return BETTER
    if interval["low"] > 0:
        return WORSE
    return UNDECIDED


def paired_comparison(
    champion_errors: np.ndarray,
    challenger_errors: np.ndarray,
    *,
    confidence: float,
    resamples: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Live MAE and RMSE of both versions on the same rows, and the bootstrap of the loss differences.

    ``*_errors`` are per-row errors (actual minus prediction), row ``i`` of both on the same input row.
    """
    champion = np.asarray(champion_errors, dtype=np.float64)
    challenger = np.asarray(challenger_errors, dtype=np.float64)
    if champion.shape != challenger.shape:
        raise ValueError("Paired errors need the same rows for both versions.")
    n = len(champion)
    figures: dict[str, Any] = {"paired_rows": n, "confidence": confidence, "resamples": resamples}
    if n == 0:
        return figures | {"verdict": UNDECIDED}
    figures["champion"] = {"mae": float(np.abs(champion).mean()), "rmse": float(np.sqrt(np.square(champion).mean()))}
    figures["challenger"] = {
        "mae": float(np.abs(challenger).mean()),
        "rmse": float(np.sqrt(np.square(challenger).mean())),
    }
    if n < 2:
        return figures | {"verdict": UNDECIDED}
    absolute = bootstrap_difference(
        np.abs(challenger) - np.abs(champion), confidence=confidence, resamples=resamples, seed=seed
    )
    squared = normal_difference(np.square(challenger) - np.square(champion), confidence=confidence)
    figures["absolute_error_difference"] = absolute
    figures["squared_error_difference"] = squared
    figures["verdict"] = verdict(absolute)
    return figures


def percentile(values: np.ndarray, q: float) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, q)) if len(values) else None


def error_rate(scored: int, failed: int) -> float | None:
    """Failed scorings over all scorings (``None`` before the first)."""
    total = scored + failed
    return failed / total if total else None


def decision(figures: dict[str, Any], rules: Rules) -> tuple[str | None, str]:
    """What the evidence says to do (``promote``, ``rollback`` or ``None``: wait), and why in one sentence.

    A canary's guards come first and need fewer rows: the challenger answers real users, so a clearly broken one
    goes at once. Then, with at least ``min_paired_rows`` paired rows, the bootstrap's verdict on the MAE decides.
    """
    n = figures.get("paired_rows", 0)
    rates = figures.get("error_rate", {})
    challenger_rate = rates.get("challenger")
    if rules.canary:
        scorings = figures.get("scorings", {}).get("challenger", 0)
        if (
            challenger_rate is not None
            and scorings >= rules.guard_min_rows
            and challenger_rate > rules.guard_error_rate
        ):
            return ROLLBACK, (
                f"Guard: the challenger failed {challenger_rate:.1%} of its scorings "
                f"(more than {rules.guard_error_rate:.1%})."
            )
        if n >= rules.guard_min_rows and n and "champion" in figures:
            champion_mae, challenger_mae = figures["champion"]["mae"], figures["challenger"]["mae"]
            if challenger_mae > rules.guard_error_factor * champion_mae:
                return ROLLBACK, (
                    f"Guard: the challenger's live MAE {challenger_mae:.6g} exceeds "
                    f"{rules.guard_error_factor:g} x the "
                    f"champion's {champion_mae:.6g} on {n} paired rows."
                )
    if n < rules.min_paired_rows:
        return None, f"Waiting for feedback: {n} of {rules.min_paired_rows} paired rows."
    found = figures.get("verdict")
    interval = figures.get("absolute_error_difference", {})
    span = f"[{interval.get('low', 0):.6g}, {interval.get('high', 0):.6g}]"
    if found == BETTER:
        return PROMOTE, (
            f"The challenger's MAE is lower on {n} paired rows: the {rules.confidence:.0%} interval of the "
            f"difference (challenger - champion) is {span}."
        )
    if found == WORSE:
        return ROLLBACK, (
            f"The challenger's MAE is higher on {n} paired rows: the {rules.confidence:.0%} interval of the "
            f"difference (challenger - champion) is {span}."
        )
    return None, f"No difference at {rules.confidence:.0%} yet on {n} paired rows: the interval {span} holds zero."
