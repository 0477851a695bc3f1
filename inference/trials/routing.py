"""A running trial on the request path: which version answers, and the other version's scoring of the same rows.

Without a trial, a request pays one dictionary lookup (``TrialRoutes.running``: the model's running trial, read
from the database at most once per ``MDS_ALIAS_CHECK_INTERVAL`` seconds per process, forgotten at once in the
process that starts or ends a trial). With one, a request for ``@champion`` is routed: in ``canary`` mode a stable
hash of its routing key (``X-Routing-Key``, else the caller, else the client's address) sends ``share`` of the keys
to the challenger, always the same keys; in ``shadow`` mode the champion answers. The version that did not answer
scores the same rows in a bounded in-process queue drained by one thread (``ShadowScorer``): a full queue drops the
scoring (counted), and its failures only count against that version, never against the answer.
"""

import hashlib
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import F

from core.contract import VersionRef
from core.errors import ApplicationError, TooLarge
from core.request_ids import request_id
from core.tabular import TableError

from ..model_cache import model_cache

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
# Errors of the request itself: the other version would refuse it just the same, so they count against nobody.
REQUEST_ERRORS = (TableError, TooLarge)


@dataclass(frozen=True)
class TrialRoute:
    """What routing needs of a running trial."""

    trial_id: int
    model_name: str
    champion: int
    challenger: int
    mode: str
    share: float


@dataclass(frozen=True)
class Routing:
    """One request's route: the version that answers (``served``) and the one that scores in the shadow."""

    trial: TrialRoute
    served: int
    other: int

    @property
    def served_arm(self) -> str:
        return CHAMPION if self.served == self.trial.champion else CHALLENGER

    @property
    def other_arm(self) -> str:
        return CHALLENGER if self.served_arm == CHAMPION else CHAMPION


class TrialRoutes:
    """The running trial of each model, as this process last read it (at most ``ttl`` seconds ago)."""

    def __init__(self, *, ttl: float, reader: Callable[[str], TrialRoute | None] | None = None):
        self.ttl = ttl
        self.reader = reader or _running_trial_read
        self._known: dict[str, tuple[TrialRoute | None, float]] = {}
        self._lock = threading.Lock()

    def running(self, model_name: str) -> TrialRoute | None:
        known = self._known.get(model_name)
        if known is not None and time.monotonic() < known[1]:
            return known[0]
        try:
            route = self.reader(model_name)
        except Exception as exc:  # the database is down for a moment: no trial routing, the champion answers
            logger.warning("Could not read the running trial of %s: %s", model_name, exc)
            route = known[0] if known is not None else None
        with self._lock:
            self._known[model_name] = (route, time.monotonic() + self.ttl)
        return route

    def forget(self, model_name: str | None = None) -> None:
        with self._lock:
            if model_name is None:
                self._known.clear()
            else:
                self._known.pop(model_name, None)


def _running_trial_read(model_name: str) -> TrialRoute | None:
    from ..models import Trial

    row = (
        Trial.objects.filter(model_name=model_name, status=Trial.Status.RUNNING)
        .values_list("id", "champion_version", "challenger_version", "mode", "share")
        .first()
    )
    if row is None:
        return None
    trial_id, champion, challenger, mode, share = row
    return TrialRoute(trial_id, model_name, champion, challenger, mode, share)


def routing_bucket(trial_id: int, key: str) -> float:
    """A stable number in [0, 1) for ``key`` in this trial: the same key always lands in the same place."""
    digest = hashlib.blake2b(f"{trial_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def trial_routing(*, model_name: str, reference: VersionRef, routing_key: str) -> Routing | None:
    """The route of a request for ``reference`` of ``model_name`` if a trial runs and the request is one it takes:
    one for the serving alias (``@champion``, also the default), while it still names the trial's champion.
    Requests for a version number, ``latest`` or another alias are never rerouted."""
    if reference.alias != settings.MDS_SERVING_ALIAS.removeprefix("@"):
        return None
    trial = trial_routes().running(model_name)
    if trial is None:
        return None
    # A champion moved by hand since the trial started: the trial no longer compares what @champion serves.
    if model_cache().resolve(model_name, reference) != trial.champion:
        return None
    if trial.mode == "canary" and routing_bucket(trial.trial_id, routing_key) < trial.share:
        return Routing(trial, served=trial.challenger, other=trial.champion)
    return Routing(trial, served=trial.champion, other=trial.challenger)


def trial_answer(routing: Routing, predict: Callable[[int], Any]) -> tuple[Any, Routing | None, float]:
    """``predict(version)`` for the version ``routing`` serves, timed; counted for that version.

    A challenger that fails on a request the champion can answer (not a bad request) is counted as failed and the
    champion answers instead: the answer then names the champion and nothing is scored in the shadow (the returned
    routing is ``None``). Returns the prediction, the routing still in effect, and the scoring's milliseconds.
    """
    started = time.perf_counter()
    try:
        prediction = predict(routing.served)
    except REQUEST_ERRORS:
        raise
    except Exception:
        scorer = shadow_scorer()
        if routing.served_arm == CHAMPION:
            scorer.count(routing.trial.trial_id, CHAMPION, ok=False)
            raise
        scorer.count(routing.trial.trial_id, CHALLENGER, ok=False)
        logger.warning("The challenger v%s failed a trial answer; the champion answers", routing.served, exc_info=True)
        started = time.perf_counter()
        prediction = predict(routing.trial.champion)
        elapsed = (time.perf_counter() - started) * 1000
        scorer.count(routing.trial.trial_id, CHAMPION, ok=True)
        return prediction, None, elapsed
    elapsed = (time.perf_counter() - started) * 1000
    shadow_scorer().count(routing.trial.trial_id, routing.served_arm, ok=True)
    return prediction, routing, elapsed


@dataclass(frozen=True)
class Routed:
    """A request's prediction, and what a running trial made of it (``routing`` is ``None`` when none took it)."""

    prediction: Any
    routing: Routing | None = None
    shadow: Routing | None = None  # what scores the same rows off the request path, if anything
    latency_ms: float | None = None

    def log_fields(self, request_id: uuid.UUID) -> dict | None:
        """The trial's fields of the answer's prediction log row."""
        if self.routing is None:
            return None
        return {"trial_id": self.routing.trial.trial_id, "pair_id": request_id, "latency_ms": self.latency_ms}


def trial_routed(
    *, model_name: str, reference: VersionRef, routing_key: str, predict: Callable[[VersionRef], Any]
) -> Routed:
    """``predict(reference)``, or, when a running trial takes the request, ``predict`` of the version it routes to
    (``trial_routing``, ``trial_answer``): what every protocol's inference runs."""
    routing = trial_routing(model_name=model_name, reference=reference, routing_key=routing_key)
    if routing is None:
        return Routed(predict(reference))
    prediction, shadow, latency_ms = trial_answer(routing, lambda number: predict(VersionRef(number=number)))
    return Routed(prediction, routing, shadow, latency_ms)


def shadow_submit(
    routed: Routed, *, interval: float | None, request_id: uuid.UUID, caller_id: int | None, client_request_id: str
) -> None:
    """Queue the shadow scoring of ``routed``'s rows by the version that did not answer, if a trial asks for it."""
    if routed.shadow is None:
        return
    prediction = routed.prediction
    shadow_scorer().submit(
        ShadowJob(
            routing=routed.shadow,
            features=prediction.features,
            feature_names=prediction.feature_names,
            interval=interval,
            request_id=request_id,
            caller_id=caller_id,
            client_request_id=client_request_id,
        )
    )


@dataclass
class ShadowJob:
    """The rows an answer was given for, to be scored by the version that did not answer."""

    routing: Routing
    features: np.ndarray
    feature_names: list[str]
    interval: float | None
    request_id: uuid.UUID
    caller_id: int | None
    client_request_id: str


class ShadowScorer:
    """The bounded queue of shadow scorings and the thread that scores them; one per process (``shadow_scorer()``).

    It also keeps the trials' scoring counts (answers and shadow scorings, failed or not) and adds them to the
    trials' rows in the database on each round, so the request path never writes them itself.
    """

    def __init__(self, *, max_entries: int, background: bool = True, interval: float = 1.0):
        self.max_entries = max_entries
        self.background = background
        self.interval = interval
        self.dropped = 0
        self._queue: deque[ShadowJob] = deque()
        self._counts: dict[tuple[int, str], list[int]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, job: ShadowJob) -> bool:
        with self._wake:
            if len(self._queue) >= self.max_entries:
                self.dropped += 1
                return False
            self._queue.append(job)
            self._wake.notify()
        if self.background and self._thread is None:
            self._start()
        return True

    def count(self, trial_id: int, arm: str, *, ok: bool) -> None:
        with self._wake:
            counts = self._counts.setdefault((trial_id, arm), [0, 0])
            counts[0 if ok else 1] += 1
        if self.background and self._thread is None:
            self._start()

    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def clear(self) -> None:
        with self._wake:
            self._queue.clear()
            self._counts.clear()

    def flush(self) -> int:
        """Score everything queued now, in the calling thread, then write the counts; returns the jobs scored."""
        done = 0
        while True:
            with self._wake:
                if not self._queue:
                    break
                job = self._queue.popleft()
            self._score(job)
            done += 1
        self._counts_write()
        return done

    def _start(self) -> None:
        with self._wake:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="trial-shadow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._queue:
                    self._wake.wait(self.interval)
            try:
                self.flush()
            except Exception:
                logger.exception("The trial's shadow scorer failed")
            finally:
                connection.close_if_unusable_or_obsolete()

    def _score(self, job: ShadowJob) -> None:
        from ..prediction_log import prediction_log_submit
        from ..services import loaded_version, prediction_from_features

        routing = job.routing
        trial = routing.trial
        try:
            started = time.perf_counter()
            loaded = loaded_version(model_name=trial.model_name, version=VersionRef(number=routing.other))
            if loaded.feature_names != job.feature_names:
                raise ApplicationError(
                    f"Version {routing.other} reads other columns than version {routing.served}.", code="mismatch"
                )
            try:
                prediction = prediction_from_features(
                    loaded=loaded, X=job.features, model_format="auto", interval=job.interval
                )
            except ApplicationError:
                if job.interval is None:
                    raise
                # This version cannot give the interval asked of the other: its point predictions still pair.
                prediction = prediction_from_features(loaded=loaded, X=job.features, model_format="auto")
            elapsed = (time.perf_counter() - started) * 1000
        except Exception as exc:
            logger.warning("Trial %s: version %s failed a shadow scoring: %s", trial.trial_id, routing.other, exc)
            self.count(trial.trial_id, routing.other_arm, ok=False)
            return
        self.count(trial.trial_id, routing.other_arm, ok=True)
        prediction_log_submit(
            request_id=request_id(),
            model_name=prediction.name,
            model_version=prediction.version,
            engine=prediction.model_format,
            feature_names=prediction.feature_names,
            inputs=job.features,
            predictions=prediction.values,
            intervals=prediction.intervals,
            caller_id=job.caller_id,
            client_request_id=job.client_request_id,
            trial={"trial_id": trial.trial_id, "pair_id": job.request_id, "shadow": True, "latency_ms": elapsed},
        )

    def _counts_write(self) -> None:
        from ..models import Trial

        with self._wake:
            counts, self._counts = self._counts, {}
        for (trial_id, arm), (ok, failed) in counts.items():
            try:
                Trial.objects.filter(pk=trial_id).update(
                    **{f"{arm}_scored": F(f"{arm}_scored") + ok, f"{arm}_failed": F(f"{arm}_failed") + failed}
                )
            except Exception as exc:
                logger.warning("Could not count trial %s's scorings: %s", trial_id, exc)


_routes: TrialRoutes | None = None
_scorer: ShadowScorer | None = None
_lock = threading.Lock()


def trial_routes() -> TrialRoutes:
    global _routes
    if _routes is None:
        with _lock:
            if _routes is None:
                _routes = TrialRoutes(ttl=settings.MDS_ALIAS_CHECK_INTERVAL)
    return _routes


def shadow_scorer() -> ShadowScorer:
    global _scorer
    if _scorer is None:
        with _lock:
            if _scorer is None:
                _scorer = ShadowScorer(
                    max_entries=settings.MDS_TRIAL_SHADOW_QUEUE, background=settings.MDS_TRIAL_SHADOW_BACKGROUND
                )
    return _scorer


def trial_shadow_flush() -> int:
    """Score what this process has queued, now, and write the counts (tests, management commands)."""
    return shadow_scorer().flush()


def _forget_in_child() -> None:
    # A forked child inherits the queue but not the thread.
    global _routes, _scorer, _lock
    _routes, _scorer, _lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
