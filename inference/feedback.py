"""Actuals fed back for logged predictions, and the live performance of a version computed from them.

Feedback stores, next to the prediction, the sums the metrics need (absolute and squared errors, the actuals and
their squares, rows inside the interval), so a version's MAE, RMSE and R² over any window are one SQL aggregate
however many predictions it served.
"""

import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Count, Sum
from django.utils import timezone

from core.errors import ApplicationError, Conflict, NotFound
from core.tabular import TableError
from registry_mirror.models import ModelVersion

from .models import PredictionLog
from .parsing import Table

# Columns of a feedback CSV that hold the actuals, in order of preference (else the only column).
ACTUAL_COLUMNS = ("actual", "target")


def request_id_parse(value: Any) -> uuid.UUID:
    """A request id as ``/predict`` answers it (a UUID, with or without dashes)."""
    if value is None or value == "":
        raise ApplicationError("request_id is missing: the X-Request-Id of the prediction.", code="invalid_request_id")
    try:
        return uuid.UUID(str(value).strip())
    except (ValueError, AttributeError) as exc:
        raise ApplicationError(
            f"request_id {str(value)[:80]!r} is not a request id as /predict answers it (a UUID).",
            code="invalid_request_id",
        ) from exc


def actuals_from_table(table: Table) -> list[Any]:
    """The actuals column of a feedback CSV: ``actual``, else ``target``, else its only column."""
    names = [name for name in ACTUAL_COLUMNS if name in table.columns]
    if not names and len(table.columns) != 1:
        raise TableError(
            f"Missing column: {ACTUAL_COLUMNS[0]} (or {ACTUAL_COLUMNS[1]}, or a file of one column).",
            code="missing_columns",
            extra={"missing": [ACTUAL_COLUMNS[0]]},
        )
    position = table.columns.index(names[0]) if names else 0
    return [row[position] for row in table.iter_rows()]


def feedback_record(*, request_id: Any, actuals: Sequence[Any], user) -> PredictionLog:
    """Attach the actuals of a logged prediction, one per predicted row in the same order.

    Only the prediction's caller sends its actuals (or a maintainer, ``inference.feedback_all``): anyone else could
    otherwise skew a version's live accuracy, and the caller's own actuals would then be refused. Posting the same
    actuals again is harmless; different ones for the same prediction are refused.

    Raises:
        NotFound: ``unknown_request_id``: no logged prediction of ``user``'s has that id (it expired, is still on
            its way to the log — writing takes up to ``MDS_PREDICTION_LOG_INTERVAL`` seconds — or is another
            user's, which is not told).
        TableError: ``wrong_row_count`` or ``bad_cell`` naming the row.
        Conflict: ``feedback_exists`` with other actuals.
    """
    key = request_id_parse(request_id)
    # A trial's shadow scoring is not an answer: its actuals come with its answer's.
    logs = PredictionLog.objects.filter(request_id=key, shadow=False).defer("inputs")
    if not user.has_perm("inference.feedback_all"):
        logs = logs.filter(caller_id=user.pk)
    log = logs.first()
    if log is None:
        raise NotFound(
            f"No logged prediction has request id {key}: it expired, or it was answered in the last few seconds "
            "and is not written yet (retry).",
            code="unknown_request_id",
            extra={"request_id": str(key)},
        )
    values = _actual_values(actuals, log.n_rows)
    errors = values - np.frombuffer(log.predictions, dtype="<f8")
    fields = {
        "actuals": values.astype("<f8").tobytes(),
        "feedback_at": timezone.now(),
        "abs_error_sum": float(np.abs(errors).sum()),
        "squared_error_sum": float(np.square(errors).sum()),
        "actual_sum": float(values.sum()),
        "actual_squared_sum": float(np.square(values).sum()),
        "covered": None,
    }
    if log.interval_lower is not None and log.interval_upper is not None:
        lower = np.frombuffer(log.interval_lower, dtype="<f8")
        upper = np.frombuffer(log.interval_upper, dtype="<f8")
        fields["covered"] = int(np.count_nonzero((lower <= values) & (values <= upper)))
    # Conditional on "no actuals yet": two concurrent posts cannot both write.
    if PredictionLog.objects.filter(pk=log.pk, actuals__isnull=True).update(**fields) == 0:
        log.refresh_from_db()
        # The update found actuals there (a row deleted since raises DoesNotExist above).
        assert log.actuals is not None
        if bytes(log.actuals) != fields["actuals"]:
            raise Conflict(
                f"Request {key} already has other actuals; feedback is recorded once.",
                code="feedback_exists",
                extra={"request_id": str(key)},
            )
        return log
    log.refresh_from_db()
    if log.trial_id is not None:
        _trial_feedback(log, log.trial_id, values)
    return log


def _trial_feedback(log: PredictionLog, trial_id: int, values: np.ndarray) -> None:
    """The same actuals for the other version's scoring of the answer's rows (a live trial's pair), then the
    trial's evaluation once committed (``inference.trials``)."""
    from .trials.services import trial_feedback_arrived

    for other in PredictionLog.objects.filter(pair_id=log.request_id, shadow=True, actuals__isnull=True).defer(
        "inputs"
    ):
        errors = values - np.frombuffer(other.predictions, dtype="<f8")
        covered = None
        if other.interval_lower is not None and other.interval_upper is not None:
            lower = np.frombuffer(other.interval_lower, dtype="<f8")
            upper = np.frombuffer(other.interval_upper, dtype="<f8")
            covered = int(np.count_nonzero((lower <= values) & (values <= upper)))
        PredictionLog.objects.filter(pk=other.pk, actuals__isnull=True).update(
            actuals=values.astype("<f8").tobytes(),
            feedback_at=log.feedback_at,
            abs_error_sum=float(np.abs(errors).sum()),
            squared_error_sum=float(np.square(errors).sum()),
            actual_sum=float(values.sum()),
            actual_squared_sum=float(np.square(values).sum()),
            covered=covered,
        )
    trial_feedback_arrived(trial_id=trial_id)


def _actual_values(actuals: Sequence[Any], n_rows: int) -> np.ndarray:
    if not isinstance(actuals, list | tuple):
        raise TableError('"actuals" must be a list of numbers, one per predicted row.', code="bad_json")
    if len(actuals) != n_rows:
        raise TableError(
            f"The prediction had {n_rows} rows; {len(actuals)} actuals were sent (one per row, in order).",
            code="wrong_row_count",
            extra={"rows": n_rows, "actuals": len(actuals)},
        )
    values = np.empty(n_rows, dtype=np.float64)
    for row, cell in enumerate(actuals, start=1):
        try:
            value = float(cell) if not isinstance(cell, bool) and cell not in (None, "") else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise TableError(
                f"Actual of row {row}: {cell!r} is not a finite number.",
                code="bad_cell",
                extra={"column": "actual", "row": row},
            )
        values[row - 1] = value
    return values


def performance_get(
    *, model_name: str, version: int, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Live metrics of ``version`` over the feedback on predictions made in ``[since, until)``, next to the
    training holdout's.

    Raises:
        NotFound: neither the registry mirror nor the prediction log knows the version.
    """
    holdout = _holdout(model_name, version)
    logged = PredictionLog.objects.filter(model_name=model_name, model_version=version)
    if holdout is None and not logged.exists():
        raise NotFound(
            f"Model {model_name!r} has no version {version} (neither mirrored nor ever served).",
            extra={"model_name": model_name, "version": version},
        )
    if since is not None:
        logged = logged.filter(predicted_at__gte=since)
    if until is not None:
        logged = logged.filter(predicted_at__lt=until)
    return {
        "model": {"name": model_name, "version": version},
        "since": since,
        "until": until,
        "live": live_metrics(logged),
        "holdout": holdout,
    }


def live_metrics(logged) -> dict[str, Any]:
    """MAE, RMSE, R² and interval coverage over the rows of ``logged`` (a PredictionLog queryset) with actuals."""
    with_actuals = logged.filter(actuals__isnull=False)
    sums = with_actuals.aggregate(
        requests=Count("id"),
        n=Sum("n_rows"),
        abs_error=Sum("abs_error_sum"),
        squared_error=Sum("squared_error_sum"),
        actual=Sum("actual_sum"),
        actual_squared=Sum("actual_squared_sum"),
    )
    n = sums["n"] or 0
    metrics: dict[str, Any] = {"n": n, "requests": sums["requests"], "mae": None, "rmse": None, "r2": None}
    if n:
        metrics["mae"] = sums["abs_error"] / n
        metrics["rmse"] = math.sqrt(sums["squared_error"] / n)
        total = sums["actual_squared"] - sums["actual"] ** 2 / n
        # R² is undefined for a single row or constant actuals (no variance to explain).
        metrics["r2"] = (
            1.0 - sums["squared_error"] / total if n > 1 and total > 1e-12 * abs(sums["actual_squared"]) else None
        )
    coverage = (
        with_actuals.filter(covered__isnull=False)
        .values("interval_level")
        .annotate(n=Sum("n_rows"), covered=Sum("covered"))
        .order_by("interval_level")
    )
    metrics["interval_coverage"] = [
        {"level": row["interval_level"], "n": row["n"], "coverage": row["covered"] / row["n"]}
        for row in coverage
        if row["n"]
    ]
    return metrics


def _holdout(model_name: str, version: int) -> dict[str, Any] | None:
    mirrored = ModelVersion.objects.filter(name=model_name, version=version).first()
    if mirrored is None:
        return None
    metrics = mirrored.metrics or {}
    return {
        "n": int(metrics["n_test"]) if "n_test" in metrics else None,
        "mae": mirrored.mae,
        "rmse": mirrored.rmse,
        "r2": mirrored.r2,
        # Interval coverage and width measured on the holdout at training, where recorded.
        "intervals": {
            key: value for key, value in sorted(metrics.items()) if key.startswith(("interval", "coverage"))
        },
    }
