"""Domain errors shared by every app, and the one table that maps them to HTTP statuses. Pure Python.

Each error class stands for one kind of answer; its ``code`` is a stable machine-readable name that clients
match on (a class may carry more specific codes, such as ``TableError``'s ``bad_cell``). Services raise these,
never HTTP exceptions; ``core.exception_handler`` renders them as ``{"message", "code", "extra"}``.
"""

from typing import Any

# A value from the input is quoted in an error message up to this many characters: a 50 MB bad cell made a 52 MB
# 400 body, and a job's stored error returned by every listing.
QUOTE_MAX_CHARS = 100


def quoted(value: object, limit: int = QUOTE_MAX_CHARS) -> str:
    """``repr(value)`` when its text is at most ``limit`` characters, else the repr of its first ``limit``
    characters followed by ``…`` and the full length."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(value)
    return f"{text[:limit]!r}… ({len(text)} characters)"


class ApplicationError(Exception):
    """A problem the caller can fix or must know about (400 unless a subclass says otherwise)."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.extra = extra or {}


class NotFound(ApplicationError):
    code = "not_found"


class Forbidden(ApplicationError):
    """The caller's role allows the action, but not on this object (another trainer's model)."""

    code = "forbidden"


class TooLarge(ApplicationError):
    """A request or file over a configured size or row limit."""

    code = "too_large"


class UntrustedArtifact(ApplicationError):
    """An artifact whose checksum does not match the one recorded when this service produced it."""

    code = "untrusted_artifact"


class Conflict(ApplicationError):
    """The request clashes with the current state or with what is already recorded (a promotion worse than the
    current holder, different actuals for the same prediction).
    """

    code = "conflict"


class Unavailable(ApplicationError):
    """A dependency could not be reached: a transient fault, worth retrying later.

    Answered as 503 with ``Retry-After: retry_after`` (seconds); background work retries it with backoff.
    """

    code = "unavailable"
    retry_after = 5


class MlflowUnavailable(Unavailable):
    """The MLflow tracking server or store could not be reached."""

    code = "mlflow_unavailable"
    # A restarting MLflow server takes ~10 s before it answers again.
    retry_after = 10


class DatabaseUnavailable(Unavailable):
    """Django's database refused, dropped or timed out a connection."""

    code = "database_unavailable"


class StorageUnavailable(Unavailable):
    """The object store that keeps uploaded datasets (S3) could not be reached."""

    code = "storage_unavailable"


class BrokerUnavailable(Unavailable):
    """The Celery broker (Redis) could not be reached."""

    code = "broker_unavailable"


class LeaseLost(Exception):
    """Another execution took over a training job this one was running: stop without touching the job.

    Not an ApplicationError: it is no answer to anyone, only a signal between a job's execution and its lease.
    """


class JobCancelled(LeaseLost):
    """The training job this execution runs was cancelled: stop at this checkpoint, register nothing."""


# Anything not listed here (ApplicationError and its other subclasses) is the client's to fix: 400.
HTTP_STATUS: dict[type[ApplicationError], int] = {
    NotFound: 404,
    Forbidden: 403,
    UntrustedArtifact: 409,
    Conflict: 409,
    TooLarge: 413,
    Unavailable: 503,
}


def http_status(error: ApplicationError) -> int:
    """The HTTP status for ``error``: its nearest class in ``HTTP_STATUS``, else 400."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
