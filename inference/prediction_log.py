"""The prediction log's writer: a bounded in-process queue drained by one background thread in batches.

A prediction only appends a reference to its arrays to the queue (~2 µs); the thread encodes them and
bulk-inserts up to ``MDS_PREDICTION_LOG_BATCH`` rows per statement, every ``MDS_PREDICTION_LOG_INTERVAL``
seconds or as soon as a batch is full. Logging never blocks or fails a prediction: when the queue holds
``MDS_PREDICTION_LOG_QUEUE`` entries or ``MDS_PREDICTION_LOG_QUEUE_BYTES`` of arrays, the new entry is dropped and
counted (``mds_prediction_log_dropped_total{reason="full"}``), and a batch the database refuses is dropped and
counted too (``reason="error"``). What is still queued when a process exits normally is written at exit; a killed
process loses up to a few seconds of log.
"""

import atexit
import logging
import os
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone

from .metrics import LOG_DROPPED, LOG_QUEUED, LOG_WRITTEN

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LoggedPrediction:
    """What one answer leaves in the queue: references to its arrays, encoded only by the writer thread."""

    request_id: uuid.UUID
    predicted_at: datetime
    model_name: str
    model_version: int
    engine: str
    feature_names: list[str]
    inputs: np.ndarray
    predictions: np.ndarray
    interval_level: float | None = None
    interval_lower: np.ndarray | None = None
    interval_upper: np.ndarray | None = None
    caller_id: int | None = None
    client_request_id: str = ""
    # A live trial's rows (``inference.trials``): its id, the answer's request id on both versions' rows, whether
    # this row is the other version's scoring, and the scoring's time.
    trial_id: int | None = None
    pair_id: uuid.UUID | None = None
    shadow: bool = False
    latency_ms: float | None = None

    @property
    def nbytes(self) -> int:
        return self.inputs.nbytes + 3 * self.predictions.nbytes

    def values(self, prepare: "_Preparers") -> tuple:
        """The INSERT parameters of this entry, in ``INSERT_COLUMNS`` order."""
        return (
            prepare.request_id(self.request_id),
            prepare.predicted_at(self.predicted_at),
            self.model_name,
            self.model_version,
            self.engine,
            len(self.predictions),
            prepare.feature_names(list(self.feature_names)),
            np.ascontiguousarray(self.inputs, dtype="<f4").tobytes(),
            np.asarray(self.predictions, dtype="<f8").tobytes(),
            self.interval_level,
            _f8_bytes(self.interval_lower),
            _f8_bytes(self.interval_upper),
            self.caller_id,
            self.client_request_id,
            self.trial_id,
            None if self.pair_id is None else prepare.pair_id(self.pair_id),
            self.shadow,
            self.latency_ms,
        )


def _f8_bytes(values: np.ndarray | None) -> bytes | None:
    return None if values is None else np.asarray(values, dtype="<f8").tobytes()


class PredictionLogWriter:
    """The queue and its writer thread; one per process (``prediction_log_writer()``)."""

    def __init__(self, *, max_entries: int, max_bytes: int, batch_size: int, interval: float, background: bool = True):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self.interval = interval
        self.background = background
        self.dropped = 0
        self._queue: deque[LoggedPrediction] = deque()
        self._queued_bytes = 0
        self._wake = threading.Condition()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, entry: LoggedPrediction) -> bool:
        """Queue ``entry`` for the log; ``False`` (and counted) if the queue is full. Never blocks on the database."""
        size = entry.nbytes
        with self._wake:
            if len(self._queue) >= self.max_entries or self._queued_bytes + size > self.max_bytes:
                self.dropped += 1
                full = True
            else:
                self._queue.append(entry)
                self._queued_bytes += size
                full = False
                if len(self._queue) >= self.batch_size:
                    self._wake.notify()
        if full:
            LOG_DROPPED.labels("full").inc()
            return False
        LOG_QUEUED.inc()
        if self.background and self._thread is None:
            self._start()
        return True

    def flush(self) -> int:
        """Write everything queued now, in the calling thread; returns the rows written."""
        written = 0
        while batch := self._take(self.batch_size):
            written += self._write(batch)
        return written

    def clear(self) -> int:
        """Forget what is queued (tests start from an empty queue); returns how many entries were dropped."""
        with self._wake:
            count = len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        LOG_QUEUED.dec(count)
        return count

    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is left (at process exit)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def _start(self) -> None:
        with self._wake:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                if len(self._queue) < self.batch_size and not self._stopping:
                    self._wake.wait(self.interval)
                stopping = self._stopping
            try:
                self.flush()
            except Exception:
                # Never let the thread die: the next round tries again.
                logger.exception("The prediction log writer failed")
            finally:
                # This thread's own connection: Django closes request threads' connections, nobody closes ours.
                connection.close_if_unusable_or_obsolete()
            if stopping:
                connection.close()
                return

    def _take(self, count: int) -> list[LoggedPrediction]:
        with self._wake:
            batch = [self._queue.popleft() for _ in range(min(count, len(self._queue)))]
            self._queued_bytes -= sum(entry.nbytes for entry in batch)
        if batch:
            LOG_QUEUED.dec(len(batch))
        return batch

    def _write(self, batch: list[LoggedPrediction]) -> int:
        try:
            with self._write_lock:
                _insert(batch)
        except Exception as exc:
            self.dropped += len(batch)
            LOG_DROPPED.labels("error").inc(len(batch))
            logger.warning("Dropped %d predictions from the log: %s", len(batch), exc)
            connection.close()
            return 0
        LOG_WRITTEN.inc(len(batch))
        return len(batch)


# The columns an answer fills; the feedback columns stay NULL until actuals arrive.
INSERT_COLUMNS = (
    "request_id",
    "predicted_at",
    "model_name",
    "model_version",
    "engine",
    "n_rows",
    "feature_names",
    "inputs",
    "predictions",
    "interval_level",
    "interval_lower",
    "interval_upper",
    "caller",
    "client_request_id",
    "trial",
    "pair_id",
    "shadow",
    "latency_ms",
)


def _column(model, name: str) -> str:
    """The database column of ``model``'s field ``name`` (``caller`` is ``caller_id``)."""
    from django.db.models import Field

    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column, f"{name} is not a column"
    return field.column


class _Preparers:
    """The database's own conversions of the columns whose form depends on it (UUID, time, JSON)."""

    def __init__(self, model, connection):
        names = ("request_id", "predicted_at", "feature_names", "pair_id")
        fields = {name: model._meta.get_field(name) for name in names}
        self.request_id = lambda value: fields["request_id"].get_db_prep_value(value, connection)
        self.pair_id = lambda value: fields["pair_id"].get_db_prep_value(value, connection)
        self.predicted_at = lambda value: fields["predicted_at"].get_db_prep_value(value, connection)
        self.feature_names = lambda value: fields["feature_names"].get_db_prep_value(value, connection)


def _insert(batch: list[LoggedPrediction]) -> None:
    """One multi-row INSERT per batch, in one transaction.

    Plain SQL rather than ``bulk_create``: the ORM's per-field compilation cost ~0.1 ms of CPU per row, all of it
    holding the GIL the request threads need, against ~0.02 ms this way. Request ids are the server's own (fresh
    UUIDs); should one repeat, the first prediction keeps it. SQLite and PostgreSQL both read ``ON CONFLICT``.
    """
    from django.db import transaction

    from .models import PredictionLog

    table = connection.ops.quote_name(PredictionLog._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(_column(PredictionLog, name)) for name in INSERT_COLUMNS)
    placeholders = ", ".join(["%s"] * len(INSERT_COLUMNS))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT (request_id) DO NOTHING"
    prepare = _Preparers(PredictionLog, connection)
    rows = [entry.values(prepare) for entry in batch]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


_writer: PredictionLogWriter | None = None
_writer_lock = threading.Lock()


def prediction_log_writer() -> PredictionLogWriter:
    """This process's writer, built from settings on first use."""
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                writer = PredictionLogWriter(
                    max_entries=settings.MDS_PREDICTION_LOG_QUEUE,
                    max_bytes=settings.MDS_PREDICTION_LOG_QUEUE_BYTES,
                    batch_size=settings.MDS_PREDICTION_LOG_BATCH,
                    interval=settings.MDS_PREDICTION_LOG_INTERVAL,
                    background=settings.MDS_PREDICTION_LOG_BACKGROUND,
                )
                atexit.register(writer.stop)
                _writer = writer
    return _writer


def _forget_writer_in_child() -> None:
    # A forked child inherits the queue but not the thread: it starts its own writer on first use.
    global _writer, _writer_lock
    _writer, _writer_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_writer_in_child)


def prediction_log_submit(
    *,
    request_id: uuid.UUID,
    model_name: str,
    model_version: int,
    engine: str,
    feature_names: list[str],
    inputs: np.ndarray,
    predictions: np.ndarray,
    intervals: Any = None,
    caller_id: int | None = None,
    client_request_id: str = "",
    trial: dict[str, Any] | None = None,
) -> bool:
    """Queue one answered prediction for the log (when ``MDS_PREDICTION_LOG`` is on); never raises.

    ``intervals`` holds the answer's interval (``level``, ``lower``, ``upper`` attributes), if one was asked for;
    ``caller_id`` the user who asked (who alone may send its actuals), ``client_request_id`` their own id;
    ``trial`` a live trial's fields of the row (``trial_id``, ``pair_id``, ``shadow``, ``latency_ms``).
    """
    if not settings.MDS_PREDICTION_LOG:
        return False
    try:
        entry = LoggedPrediction(
            request_id=request_id,
            predicted_at=timezone.now(),
            model_name=model_name,
            model_version=model_version,
            engine=engine,
            feature_names=feature_names,
            inputs=inputs,
            predictions=predictions,
            caller_id=caller_id,
            client_request_id=client_request_id,
            **(trial or {}),
        )
        if intervals is not None:
            entry.interval_level = float(intervals.level)
            entry.interval_lower = np.asarray(intervals.lower, dtype=np.float64)
            entry.interval_upper = np.asarray(intervals.upper, dtype=np.float64)
        return prediction_log_writer().submit(entry)
    except Exception:
        logger.exception("Could not queue a prediction for the log")
        return False


def prediction_log_answer(
    prediction,
    *,
    request_id: uuid.UUID,
    caller_id: int | None,
    client_request_id: str,
    trial: dict[str, Any] | None = None,
) -> bool:
    """``prediction_log_submit`` for an answered ``inference.services.Prediction``, whichever protocol asked."""
    return prediction_log_submit(
        request_id=request_id,
        model_name=prediction.name,
        model_version=prediction.version,
        engine=prediction.model_format,
        feature_names=prediction.feature_names,
        inputs=prediction.features,
        predictions=prediction.values,
        intervals=prediction.intervals,
        caller_id=caller_id,
        client_request_id=client_request_id,
        trial=trial,
    )


def prediction_log_flush() -> int:
    """Write what this process has queued, now (tests, management commands)."""
    return prediction_log_writer().flush()
