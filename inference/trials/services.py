"""Live trials: start, evaluate, decide, stop. The only writers of ``Trial`` rows.

A trial compares ``@challenger`` with ``@champion`` on the same live rows (``routing``), and its evaluation turns
the feedback into evidence (``evidence``). Every decision, by the trial's own ``auto`` policy or by a maintainer,
goes through ``_trial_end``: a promotion moves ``@champion`` through the registry mirror's gate
(``model_alias_set``, audited with the source ``trial``), and either way ``@challenger`` is removed (also
audited), so an ended trial leaves no version waiting and a retrained version starts the next one. Evaluation holds
the trial's row (``select_for_update``) and re-checks its status, so concurrent evaluations decide once.
"""

import logging
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from core.errors import ApplicationError, Conflict, NotFound
from core.events import TRIAL_PROMOTED, TRIAL_ROLLED_BACK, TRIAL_STARTED, emit
from registry_mirror import selectors
from registry_mirror.models import AliasMove
from registry_mirror.services import model_alias_remove, model_alias_set
from registry_mirror.services.aliases import model_name_check

from ..models import PredictionLog, Trial
from . import evidence
from .routing import trial_routes

logger = logging.getLogger(__name__)

# What a trial may be started with (POST /models/<name>/trial, MDS_TRIAL_ON_CHALLENGER).
OPTIONS = (
    "mode",
    "share",
    "policy",
    "confidence",
    "min_paired_rows",
    "guard_error_factor",
    "guard_error_rate",
    "guard_min_rows",
)


def _serving_alias() -> str:
    return settings.MDS_SERVING_ALIAS.removeprefix("@")


def _challenger_alias() -> str:
    return settings.MDS_CHALLENGER_ALIAS.removeprefix("@")


def trial_start(*, model_name: str, user, **options: Any) -> Trial:
    """Start a trial of the version ``@challenger`` names against ``@champion``'s, with ``options`` (``OPTIONS``).

    Raises:
        NotFound: no such model.
        Conflict: ``no_challenger`` (or ``no_champion``), ``challenger_is_champion``, ``trial_running``.
        ValidationError: an option out of range.
    """
    model_name_check(model_name)
    aliases = selectors.served_aliases_of(name=model_name)
    champion, challenger = aliases.get(_serving_alias()), aliases.get(_challenger_alias())
    extra = {"model_name": model_name, "champion": champion, "challenger": challenger}
    if challenger is None:
        raise Conflict(
            f"Model {model_name!r} has no @{_challenger_alias()}: set it (POST /models/{model_name}/aliases/"
            f"{_challenger_alias()}) or retrain, then start the trial.",
            code="no_challenger",
            extra=extra,
        )
    if champion is None:
        raise Conflict(
            f"Model {model_name!r} has no @{_serving_alias()} to compare with.", code="no_champion", extra=extra
        )
    if champion == challenger:
        raise Conflict(
            f"@{_challenger_alias()} and @{_serving_alias()} of {model_name!r} are both version {champion}.",
            code="challenger_is_champion",
            extra=extra,
        )
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ApplicationError(
            f"Unknown trial option(s): {', '.join(unknown)}.", code="invalid_input", extra={"fields": unknown}
        )
    trial = Trial(
        model_name=model_name,
        champion_version=champion,
        challenger_version=challenger,
        started_by=user if user is not None and user.is_authenticated else None,
        **options,
    )
    trial.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            trial.save()
            emit(TRIAL_STARTED, _event_payload(trial))
    except IntegrityError as exc:
        running = Trial.objects.filter(model_name=model_name, status=Trial.Status.RUNNING).first()
        raise Conflict(
            f"A trial of {model_name!r} is running already (#{running.pk if running else '?'}): stop it first.",
            code="trial_running",
            extra={"model_name": model_name, "trial": running.pk if running else None},
        ) from exc
    transaction.on_commit(lambda: trial_routes().forget(model_name))
    return trial


def trial_running_get(*, model_name: str) -> Trial | None:
    return Trial.objects.filter(model_name=model_name, status=Trial.Status.RUNNING).first()


def trial_status(*, model_name: str) -> dict[str, Any]:
    """The running trial with a fresh live comparison (and what its evidence says to do), and the ended ones."""
    model_name_check(model_name)
    running = trial_running_get(model_name=model_name)
    current = None
    if running is not None:
        figures = trial_figures(running)
        action, reason = evidence.decision(figures, _rules(running))
        current = trial_as_dict(running) | {"figures": figures, "evidence": {"action": action, "reason": reason}}
    history = Trial.objects.filter(model_name=model_name).exclude(status=Trial.Status.RUNNING)[:20]
    return {"model_name": model_name, "trial": current, "history": [trial_as_dict(trial) for trial in history]}


def trial_evaluate(*, trial_id: int) -> Trial | None:
    """Recompute a running trial's evidence and, as its policy says, decide: idempotent, one decision at most.

    The canary guards act under either policy; the verdict acts under ``auto`` only (``manual`` reports it).
    A trial whose champion or challenger was moved by hand meanwhile is stopped: it no longer compares what serves.
    """
    with transaction.atomic():
        trial = Trial.objects.select_for_update().filter(pk=trial_id).first()
        if trial is None or trial.status != Trial.Status.RUNNING:
            return trial
        aliases = selectors.served_aliases_of(name=trial.model_name)
        if aliases.get(_serving_alias()) != trial.champion_version or (
            aliases.get(_challenger_alias()) != trial.challenger_version
        ):
            _trial_close(trial, status=Trial.Status.STOPPED, reason="@champion or @challenger was moved meanwhile.")
            return trial
        trial.figures = trial_figures(trial)
        trial.evaluated_at = timezone.now()
        action, reason = evidence.decision(trial.figures, _rules(trial))
        trial.figures["evidence"] = {"action": action, "reason": reason}
        guard = reason.startswith("Guard")
        if action is not None and (trial.policy == Trial.Policy.AUTO or guard):
            _trial_end(trial, action=action, reason=reason, user=None)
        else:
            trial.full_clean(validate_constraints=False)
            trial.save()
        return trial


def trial_decide(*, model_name: str, decision: str, user, force: bool = False) -> Trial:
    """A maintainer's decision on the running trial: ``promote`` or ``rollback``, through the same code as
    ``auto``'s, with the figures at that moment. ``force`` passes the promotion gate as ``model_alias_set`` does.

    Raises:
        NotFound: no running trial.
        ApplicationError: ``invalid_input`` for another decision.
        Conflict: what the promotion gate says (``worse_than_current``...).
    """
    if decision not in (evidence.PROMOTE, evidence.ROLLBACK):
        raise ApplicationError(
            f"decision: {decision!r} is neither promote nor rollback.",
            code="invalid_input",
            extra={"field": "decision"},
        )
    with transaction.atomic():
        trial = _running_locked(model_name)
        trial.figures = trial_figures(trial)
        trial.evaluated_at = timezone.now()
        _trial_end(trial, action=decision, reason=f"Decided by a maintainer: {decision}.", user=user, force=force)
        if trial.status == Trial.Status.RUNNING:  # the gate refused
            raise Conflict(trial.reason, code="promotion_refused", extra={"trial": trial.pk})
    return trial


def trial_stop(*, model_name: str, user) -> Trial:
    """End the running trial without a decision: the aliases stay where they are."""
    with transaction.atomic():
        trial = _running_locked(model_name)
        trial.figures = trial_figures(trial)
        trial.decided_by = user if user is not None and user.is_authenticated else None
        _trial_close(trial, status=Trial.Status.STOPPED, reason="Stopped by a maintainer.")
    return trial


def trials_evaluate_running() -> int:
    """Evaluate every running trial (beat); returns how many."""
    ids = list(Trial.objects.filter(status=Trial.Status.RUNNING).values_list("pk", flat=True))
    for trial_id in ids:
        try:
            trial_evaluate(trial_id=trial_id)
        except Exception:
            logger.exception("Trial %s could not be evaluated", trial_id)
    return len(ids)


def trial_on_challenger(*, model_name: str) -> Trial | None:
    """After an alias of ``model_name`` moved: stop a running trial whose challenger is no longer ``@challenger``,
    and start one with ``MDS_TRIAL_ON_CHALLENGER``'s options if those are set and a new challenger waits."""
    running = trial_running_get(model_name=model_name)
    if running is not None:
        trial_evaluate(trial_id=running.pk)
        running.refresh_from_db()
        if running.status == Trial.Status.RUNNING:
            return None
    options = settings.MDS_TRIAL_ON_CHALLENGER
    if not options:
        return None
    aliases = selectors.served_aliases_of(name=model_name)
    challenger = aliases.get(_challenger_alias())
    if challenger is None or challenger == aliases.get(_serving_alias()):
        return None
    if Trial.objects.filter(model_name=model_name, challenger_version=challenger).exists():
        return None  # this version had its trial
    try:
        return trial_start(model_name=model_name, user=None, **options)
    except (Conflict, ApplicationError) as exc:
        logger.info("No trial started for %s: %s", model_name, exc)
        return None


def trial_feedback_arrived(*, trial_id: int) -> None:
    """Feedback reached a trial's rows: evaluate it once the feedback is committed (``trial_evaluate_task``)."""
    from ..tasks import trial_evaluate_task

    def enqueue() -> None:
        try:
            trial_evaluate_task.delay(trial_id)
        except Exception as exc:  # no broker now: beat evaluates it later
            logger.warning("Could not queue trial %s's evaluation: %s", trial_id, exc)

    transaction.on_commit(enqueue)


def trial_figures(trial: Trial) -> dict[str, Any]:
    """The live comparison: both versions' errors on the newest paired rows with feedback (at most
    ``MDS_TRIAL_MAX_ROWS``), the bootstrap, interval coverage, error rates, p99 latencies and answers per version."""
    champion_errors, challenger_errors, coverage = _paired_errors(trial)
    figures = evidence.paired_comparison(
        champion_errors,
        challenger_errors,
        confidence=trial.confidence,
        resamples=settings.MDS_TRIAL_BOOTSTRAP,
        seed=trial.pk,
    )
    figures["interval_coverage"] = coverage
    figures["scorings"] = {
        "champion": trial.champion_scored + trial.champion_failed,
        "challenger": trial.challenger_scored + trial.challenger_failed,
    }
    figures["error_rate"] = {
        "champion": evidence.error_rate(trial.champion_scored, trial.champion_failed),
        "challenger": evidence.error_rate(trial.challenger_scored, trial.challenger_failed),
    }
    rows = PredictionLog.objects.filter(trial=trial)
    latencies = list(
        rows.filter(latency_ms__isnull=False)
        .order_by("-predicted_at")
        .values_list("model_version", "latency_ms")[: settings.MDS_TRIAL_MAX_ROWS * 2]
    )
    figures["p99_latency_ms"] = {
        arm: evidence.percentile(
            np.array([ms for version, ms in latencies if version == number], dtype=np.float64), 99
        )
        for arm, number in (("champion", trial.champion_version), ("challenger", trial.challenger_version))
    }
    answered = _answers_per_version(rows)
    figures["answers"] = {
        "champion": answered.get(trial.champion_version, 0),
        "challenger": answered.get(trial.challenger_version, 0),
    }
    return figures


def _answers_per_version(rows) -> dict[int, int]:
    counted = rows.filter(shadow=False).values("model_version").annotate(n=Count("id")).order_by()
    return {row["model_version"]: row["n"] for row in counted}


def _paired_errors(trial: Trial) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Per-row errors of champion and challenger on the same rows, from answers with feedback and their pair."""
    answers = list(
        PredictionLog.objects.filter(trial=trial, shadow=False, actuals__isnull=False)
        .order_by("-predicted_at")
        .values("request_id", "model_version", "n_rows", "predictions", "actuals", "interval_lower", "interval_upper")[
            : settings.MDS_TRIAL_MAX_ROWS
        ]
    )
    shadows = {
        row["pair_id"]: row
        for row in PredictionLog.objects.filter(
            trial=trial, shadow=True, pair_id__in=[answer["request_id"] for answer in answers]
        ).values("pair_id", "model_version", "predictions", "interval_lower", "interval_upper")
    }
    errors: dict[int, list[np.ndarray]] = {trial.champion_version: [], trial.challenger_version: []}
    covered: dict[int, list[int]] = {trial.champion_version: [0, 0], trial.challenger_version: [0, 0]}
    total = 0
    for answer in answers:
        other = shadows.get(answer["request_id"])
        if other is None or total >= settings.MDS_TRIAL_MAX_ROWS:
            continue
        actuals = np.frombuffer(answer["actuals"] or b"", dtype="<f8")
        for row in (answer, other):
            errors[row["model_version"]].append(actuals - np.frombuffer(row["predictions"], dtype="<f8"))
            if row["interval_lower"] is not None and row["interval_upper"] is not None:
                lower = np.frombuffer(row["interval_lower"], dtype="<f8")
                upper = np.frombuffer(row["interval_upper"], dtype="<f8")
                covered[row["model_version"]][0] += int(np.count_nonzero((lower <= actuals) & (actuals <= upper)))
                covered[row["model_version"]][1] += len(actuals)
        total += len(actuals)

    def joined(version: int) -> np.ndarray:
        return np.concatenate(errors[version]) if errors[version] else np.empty(0)

    coverage = {
        arm: (
            {"n": covered[number][1], "coverage": covered[number][0] / covered[number][1]}
            if covered[number][1]
            else None
        )
        for arm, number in (("champion", trial.champion_version), ("challenger", trial.challenger_version))
    }
    return joined(trial.champion_version), joined(trial.challenger_version), coverage


def _rules(trial: Trial) -> evidence.Rules:
    return evidence.Rules(
        confidence=trial.confidence,
        min_paired_rows=trial.min_paired_rows,
        canary=trial.mode == Trial.Mode.CANARY,
        guard_error_factor=trial.guard_error_factor,
        guard_error_rate=trial.guard_error_rate,
        guard_min_rows=trial.guard_min_rows,
    )


def _running_locked(model_name: str) -> Trial:
    model_name_check(model_name)
    trial = Trial.objects.select_for_update().filter(model_name=model_name, status=Trial.Status.RUNNING).first()
    if trial is None:
        raise NotFound(
            f"Model {model_name!r} has no running trial.", code="no_trial", extra={"model_name": model_name}
        )
    return trial


def _trial_end(trial: Trial, *, action: str, reason: str, user, force: bool = False) -> None:
    """Promote or roll back ``trial`` (locked by the caller): move the aliases, audit, record, tell."""
    decided_by = user if user is not None and user.is_authenticated else None
    if action == evidence.PROMOTE:
        try:
            with transaction.atomic():
                move = model_alias_set(
                    name=trial.model_name,
                    alias=_serving_alias(),
                    version=trial.challenger_version,
                    user=user,
                    force=force,
                    source=AliasMove.Source.TRIAL,
                    # The paired comparison on live rows judges the versions, not holdouts of different periods.
                    live_evidence=(trial.figures or {}).get("verdict") == evidence.BETTER,
                )
        except Conflict as exc:
            # The holdout gate refuses a promotion the evidence does not support (a maintainer's decision): the
            # trial keeps running and says why; the maintainer may force it.
            trial.reason = f"The evidence says promote, but the promotion gate refused: {exc.message}"
            trial.full_clean(validate_constraints=False)
            trial.save()
            return
        trial.alias_move = move
        status, event = Trial.Status.PROMOTED, TRIAL_PROMOTED
    else:
        move = None
        status, event = Trial.Status.ROLLED_BACK, TRIAL_ROLLED_BACK
    if selectors.served_aliases_of(name=trial.model_name).get(_challenger_alias()) == trial.challenger_version:
        removal = model_alias_remove(
            name=trial.model_name, alias=_challenger_alias(), user=user, source=AliasMove.Source.TRIAL
        )
        trial.alias_move = move or removal
    trial.decided_by = decided_by
    _trial_close(trial, status=status, reason=reason)
    emit(event, _event_payload(trial))


def _trial_close(trial: Trial, *, status: str, reason: str) -> None:
    trial.status, trial.reason, trial.ended_at = status, reason, timezone.now()
    trial.full_clean(validate_constraints=False)
    trial.save()
    name = trial.model_name
    transaction.on_commit(lambda: trial_routes().forget(name))


def _event_payload(trial: Trial) -> dict[str, Any]:
    return {
        "model_name": trial.model_name,
        "trial": trial.pk,
        "champion_version": trial.champion_version,
        "challenger_version": trial.challenger_version,
        "mode": trial.mode,
        "share": trial.share,
        "policy": trial.policy,
        "status": trial.status,
        "reason": trial.reason,
        "figures": trial.figures,
    }


def trial_as_dict(trial: Trial) -> dict[str, Any]:
    return {
        "id": trial.pk,
        "model_name": trial.model_name,
        "champion_version": trial.champion_version,
        "challenger_version": trial.challenger_version,
        "mode": trial.mode,
        "share": trial.share,
        "policy": trial.policy,
        "confidence": trial.confidence,
        "min_paired_rows": trial.min_paired_rows,
        "guards": {
            "error_factor": trial.guard_error_factor,
            "error_rate": trial.guard_error_rate,
            "min_rows": trial.guard_min_rows,
        },
        "status": trial.status,
        "started_at": trial.created_at,
        "started_by": trial.started_by.username if trial.started_by else None,
        "evaluated_at": trial.evaluated_at,
        "ended_at": trial.ended_at,
        "decided_by": trial.decided_by.username if trial.decided_by else ("policy" if trial.ended_at else None),
        "reason": trial.reason,
        "alias_move": trial.alias_move_id,
        "figures": trial.figures,
    }
