"""Drift of a version's logged inputs, the daily monitoring reports, and the pruning of the prediction log."""

import json
import logging
import re
import threading
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core import contract, events
from core.errors import ApplicationError, Conflict, NotFound
from registry_mirror import gateway, selectors

from .drift import bin_counts, drift_summary
from .feedback import _holdout, live_metrics
from .models import MonitoringReport, PredictionLog

logger = logging.getLogger(__name__)

# Profiles never change once logged: each version's is fetched from MLflow once per process.
_profiles: dict[tuple[str, int], dict[str, Any] | None] = {}
_profiles_lock = threading.Lock()


def version_profile(*, model_name: str, version: int) -> dict[str, Any] | None:
    """The feature profile logged with ``version`` at training; ``None`` if it was trained without one.

    Raises:
        NotFound: no such version.
        Conflict: ``version_not_adopted``, a version MDS neither serves nor served.
        MlflowUnavailable: MLflow could not be reached.
    """
    key = (model_name, version)
    with _profiles_lock:
        if key in _profiles:
            return _profiles[key]
    # NotFound for an unknown version; Conflict for one registered directly in MLflow and never adopted.
    version_monitored_check(model_name=model_name, version=version)
    try:
        raw = gateway.model_version_file_read(name=model_name, version=version, file=contract.PROFILE_FILE)
    except NotFound:
        profile = None
    else:
        profile = json.loads(raw)
        if profile.get("format") != contract.PROFILE_FORMAT:
            logger.warning("Version %s of %s has a profile of unknown format; ignoring it", version, model_name)
            profile = None
    with _profiles_lock:
        _profiles[key] = profile
    return profile


def window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """``[since, until)``, by default the last day."""
    until = until or timezone.now()
    return since or until - timedelta(days=1), until


def drift_get(
    *, model_name: str, version: int, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Each feature's population stability index over the inputs logged in ``[since, until)`` (default: the last
    day) against the training profile, and whether it drifted (``inference.drift``).

    Raises:
        NotFound: no such version, or ``no_profile`` (trained before profiles were recorded).
    """
    since, until = window(since, until)
    profile = version_profile(model_name=model_name, version=version)
    if profile is None:
        raise NotFound(
            f"Version {version} of {model_name!r} was trained without a feature profile; its drift is unknown.",
            code="no_profile",
            extra={"model_name": model_name, "version": version},
        )
    counts, n_rows = _logged_bin_counts(model_name, version, since, until, profile)
    summary = drift_summary(
        profile,
        counts,
        n_rows,
        threshold=settings.MDS_DRIFT_PSI_THRESHOLD,
        min_rows=settings.MDS_DRIFT_MIN_ROWS,
    )
    return {"model": {"name": model_name, "version": version}, "since": since, "until": until, **summary}


def _logged_bin_counts(
    model_name: str, version: int, since: datetime, until: datetime, profile: dict[str, Any]
) -> tuple[dict[str, np.ndarray], int]:
    """Bin counts of every profiled feature over the logged inputs of the window, read a chunk of rows at a time
    (memory stays flat however many predictions the window holds)."""
    features = profile["features"]
    counts = {name: np.zeros(len(reference["edges"]) + 1, dtype=np.int64) for name, reference in features.items()}
    n_rows = 0
    rows = (
        PredictionLog.objects.filter(
            model_name=model_name, model_version=version, predicted_at__gte=since, predicted_at__lt=until
        )
        .values_list("inputs", "feature_names", "n_rows")
        .iterator(chunk_size=200)
    )
    for inputs, feature_names, n in rows:
        X = np.frombuffer(inputs, dtype="<f4").reshape(n, len(feature_names))
        for j, name in enumerate(feature_names):
            if name in counts:
                counts[name] += bin_counts(features[name]["edges"], X[:, j])
        n_rows += n
    return counts, n_rows


def monitoring_report_record(
    *, model_name: str, version: int, since: datetime | None = None, until: datetime | None = None
) -> MonitoringReport:
    """Record drift and live performance of ``version`` over ``[since, until)`` (default: the last day)."""
    since, until = window(since, until)
    logged = PredictionLog.objects.filter(
        model_name=model_name, model_version=version, predicted_at__gte=since, predicted_at__lt=until
    )
    performance = live_metrics(logged)
    try:
        drift = drift_get(model_name=model_name, version=version, since=since, until=until)
    except NotFound as exc:
        drift = {"drifted": None, "drifted_features": [], "n_rows": None, "error": exc.message}
    n_rows = drift["n_rows"] if drift["n_rows"] is not None else sum(logged.values_list("n_rows", flat=True))
    with transaction.atomic():
        report = MonitoringReport.objects.create(
            model_name=model_name,
            model_version=version,
            since=since,
            until=until,
            n_rows=n_rows,
            n_feedback=performance["n"],
            drifted=drift["drifted"],
            drifted_features=drift["drifted_features"],
            drift={key: value for key, value in drift.items() if key not in ("model", "since", "until")},
            performance=performance,
        )
        if report.drifted:
            drift_detected_emit(report)
        degraded = accuracy_degradation(model_name=model_name, version=version, performance=performance)
        if degraded is not None:
            events.emit(
                events.ACCURACY_DEGRADED,
                {
                    "model_name": model_name,
                    "version": version,
                    **degraded,
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                },
            )
    return report


def drift_detected_emit(report: MonitoringReport) -> None:
    """Tell ``DRIFT_DETECTED`` (webhooks) for a report that found drifted features, with their scores (PSI)."""
    features = report.drift.get("features", {})
    events.emit(
        events.DRIFT_DETECTED,
        {
            "model_name": report.model_name,
            "version": report.model_version,
            "report_id": report.pk,
            "since": report.since.isoformat(),
            "until": report.until.isoformat(),
            "n_rows": report.n_rows,
            "threshold": report.drift.get("threshold"),
            "drifted_features": list(report.drifted_features),
            "scores": {name: features.get(name, {}).get("psi") for name in report.drifted_features},
        },
    )


def accuracy_degradation(*, model_name: str, version: int, performance: dict[str, Any]) -> dict[str, Any] | None:
    """The figures if ``version``'s live MAE (``performance``, from feedback) exceeds its model's retraining policy's
    ``degradation_factor`` times its holdout MAE over at least ``degradation_min_rows`` rows; else ``None``."""
    policy = selectors.retrain_policy_of(name=model_name)
    if policy is None or policy.degradation_factor is None:
        return None
    live_mae, n = performance.get("mae"), performance.get("n") or 0
    if live_mae is None or n < policy.degradation_min_rows:
        return None
    holdout = _holdout(model_name, version)
    holdout_mae = holdout["mae"] if holdout is not None else None
    if holdout_mae is None:
        holdout_mae = _run_mae(model_name, version)
    if holdout_mae is None or live_mae <= policy.degradation_factor * holdout_mae:
        return None
    return {"live_mae": live_mae, "holdout_mae": holdout_mae, "factor": policy.degradation_factor, "n": n}


def _run_mae(model_name: str, version: int) -> float | None:
    """The holdout MAE logged on the version's run (the mirror may not have synced a new version yet)."""
    try:
        found = gateway.model_version_resolve(name=model_name, version=contract.VersionRef(number=version))
        mae = gateway.run_data_get(run_id=found.run_id).metrics.get("mae") if found.run_id else None
    except ApplicationError:
        return None
    return None if mae is None else float(mae)


def monitoring_reports_record(*, until: datetime | None = None) -> list[MonitoringReport]:
    """A report over the last day for every version that answered predictions in it (what beat runs daily)."""
    since, until = window(None, until)
    served = (
        PredictionLog.objects.filter(predicted_at__gte=since, predicted_at__lt=until)
        .values("model_name", "model_version")
        .annotate(last=Max("predicted_at"))
        .order_by("model_name", "model_version")
    )
    reports = []
    for row in served:
        try:
            reports.append(
                monitoring_report_record(
                    model_name=row["model_name"], version=row["model_version"], since=since, until=until
                )
            )
        except Exception:
            # One version MLflow cannot describe must not cost the others their report.
            logger.exception("No monitoring report for %s version %s", row["model_name"], row["model_version"])
    return reports


def monitoring_reports_of(*, model_name: str, version: int, limit: int = 30) -> list[MonitoringReport]:
    return list(MonitoringReport.objects.filter(model_name=model_name, model_version=version)[:limit])


def version_monitored_check(*, model_name: str, version: int) -> None:
    """Nothing if MDS serves the version or its prediction log holds it; what serving would answer otherwise.

    Raises:
        NotFound: neither MDS's record nor the prediction log knows the version.
        Conflict: ``version_not_adopted``, a version registered directly in MLflow that no maintainer adopted.
    """
    try:
        selectors.served_version_number(name=model_name, reference=contract.VersionRef(number=version))
    except (NotFound, Conflict):
        # A version MDS once served keeps its history; a name it could not have recorded never reaches a query.
        if not re.match(contract.MODEL_NAME_PATTERN, model_name):
            raise
        if not PredictionLog.objects.filter(model_name=model_name, model_version=version).exists():
            raise


def prediction_log_prune(*, now: datetime | None = None, chunk: int = 5000) -> int:
    """Delete logged predictions older than ``MDS_PREDICTION_LOG_DAYS`` days, a chunk at a time so no single
    statement holds locks for long; returns the rows deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.MDS_PREDICTION_LOG_DAYS)
    deleted = 0
    while True:
        ids = list(PredictionLog.objects.filter(predicted_at__lt=cutoff).values_list("pk", flat=True)[:chunk])
        if not ids:
            return deleted
        deleted += PredictionLog.objects.filter(pk__in=ids).delete()[0]
