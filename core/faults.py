"""Which exceptions of the infrastructure libraries mean "a dependency is down, try again later".

The API answers them with 503 and ``Retry-After`` instead of 500, and training retries them with backoff instead
of failing the job: a database connection refused, dropped (a restart, ``pg_terminate_backend``) or timed out;
S3 unreachable or answering 5xx; the broker unreachable. Errors that retrying cannot fix (a missing object, bad
SQL, a refused credential) are not listed and stay what they are.
"""

from core.errors import BrokerUnavailable, DatabaseUnavailable, StorageUnavailable, Unavailable

# S3 error codes that say "not now" rather than "never" (AWS's and MinIO/SeaweedFS's wording).
_S3_TRANSIENT_CODES = {"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout", "503", "500"}


def unavailable(exc: BaseException | None) -> Unavailable | None:
    """``exc`` as our ``Unavailable`` error if it is a transient dependency fault, else ``None``."""
    if exc is None:
        return None
    if isinstance(exc, Unavailable):
        return exc
    if _is_database_fault(exc):
        return DatabaseUnavailable("The database is unavailable; try again shortly.")
    if _is_storage_fault(exc):
        return StorageUnavailable("The dataset storage (S3) is unavailable; try again shortly.")
    if _is_broker_fault(exc):
        return BrokerUnavailable("The task broker is unavailable; try again shortly.")
    return None


def _is_database_fault(exc: BaseException) -> bool:
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)


def _is_storage_fault(exc: BaseException) -> bool:
    try:
        from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
        from botocore.exceptions import ConnectionError as BotoConnectionError
    except ImportError:  # pragma: no cover - boto3 is a dependency, but only S3 deployments need it
        return False
    # IncompleteReadError: an object's body cut short mid-read (the server stopped while it was sent).
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or exc.response.get("Error", {}).get("Code") in _S3_TRANSIENT_CODES
    return False


def _is_broker_fault(exc: BaseException) -> bool:
    from kombu.exceptions import OperationalError as KombuOperationalError

    if isinstance(exc, KombuOperationalError):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)
