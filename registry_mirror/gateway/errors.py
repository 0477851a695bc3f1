"""The one translation of MLflow's failures into MDS's errors, for the SDK's exceptions and REST answers alike.

- an outage (no connection, a timeout, an answer of 5xx, MLflow's own ``TEMPORARILY_UNAVAILABLE``):
  ``MlflowUnavailable``, answered 503 with ``Retry-After`` and retried by background work;
- ``RESOURCE_DOES_NOT_EXIST`` (or an HTTP 404): ``NotFound``;
- any other refusal by the server: ``ApplicationError`` with code ``registry_error``, naming MLflow's error code
  in ``extra["mlflow_error"]``.
"""

import contextlib
from collections.abc import Iterator

from core.errors import ApplicationError, MlflowUnavailable, NotFound


def answer_error(*, status: int, error_code: str, message: str) -> ApplicationError:
    """Our error for an MLflow server's (or the SDK's) refusal: ``status`` and ``error_code`` as MLflow gave them."""
    if error_code == "RESOURCE_DOES_NOT_EXIST" or status == 404:
        return NotFound(message, extra={"mlflow_error": error_code})
    if status >= 500 or error_code == "TEMPORARILY_UNAVAILABLE":
        return MlflowUnavailable(f"MLflow failed: {message}")
    return ApplicationError(message, code="registry_error", extra={"mlflow_error": error_code})


def unreachable(exc: BaseException) -> MlflowUnavailable:
    return MlflowUnavailable(f"MLflow is unreachable: {exc}")


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Map the MLflow SDK's and the network's exceptions escaping the block onto our errors (module docstring).

    A failure the SDK raises on its own, neither an outage nor one of those codes (a missing local file, say), is
    left as it is for the caller that knows what it means.
    """
    import requests
    from mlflow.exceptions import MlflowException, RestException

    try:
        yield
    except RestException as exc:
        raise answer_error(status=exc.get_http_status_code(), error_code=exc.error_code, message=exc.message) from exc
    except MlflowException as exc:
        # The SDK words a network failure as its own exception, raised while handling the requests one.
        if _network_failure(exc):
            raise unreachable(exc) from exc
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "TEMPORARILY_UNAVAILABLE"):
            raise answer_error(
                status=exc.get_http_status_code(), error_code=exc.error_code, message=exc.message
            ) from exc
        raise
    except requests.RequestException as exc:
        raise unreachable(exc) from exc


def _network_failure(exc: BaseException) -> bool:
    import requests

    seen = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, requests.RequestException | ConnectionError | TimeoutError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
