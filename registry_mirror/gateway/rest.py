"""Every REST call MDS makes to an MLflow server, over one pooled HTTP session per server.

MLflow's documented REST API (https://mlflow.org/docs/latest/api_reference/rest-api.html) read with ``requests``
lets a serving process read a version in milliseconds instead of importing MLflow (~1.5 s, ~180 MB) first. The
SDK (``client()``) keeps its own HTTP machinery for logging and registering; its errors go through the same
translation (``errors``).
"""

import functools
import os
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import answer_error, unreachable

# Threads of one process that may talk to MLflow at once (request threads, the cache's loads and refreshes).
POOL_SIZE = 16


def base_url() -> str:
    return settings.MLFLOW_TRACKING_URI.rstrip("/")


@functools.lru_cache(maxsize=4)
def _session(url: str) -> requests.Session:
    """The session for the server at ``url``: kept connections, and retries only where a retry is safe.

    A connection that could not be made is retried for any method (nothing was sent); a read that failed, or a
    502/503/504, only for idempotent methods (a POST is never sent twice). The readiness probe (``/health``) gets
    one attempt: it must answer within its own timeout, and says what it found now.
    """
    retry = Retry(
        total=settings.MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        backoff_factor=settings.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        status_forcelist=(502, 503, 504),
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount(f"{url}/", HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=retry))
    session.mount(f"{url}/health", HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=0))
    return session


def session() -> requests.Session:
    return _session(base_url())


def request(method: str, path: str, *, auth: tuple[str, str] | None = None, **kwargs: Any) -> requests.Response:
    """``method`` on ``<tracking URI>/<path>``; a network failure raises ``MlflowUnavailable``, an answer returns.

    Signs in as the process's MLflow user (MLflow's own environment variables) unless given ``auth``; the
    timeout is ``MLFLOW_HTTP_REQUEST_TIMEOUT`` unless given one.
    """
    kwargs.setdefault("timeout", settings.MLFLOW_HTTP_REQUEST_TIMEOUT)
    try:
        return session().request(method, f"{base_url()}/{path}", **_credentials(auth), **kwargs)
    except requests.RequestException as exc:
        raise unreachable(exc) from exc


def call(method: str, path: str, *, auth: tuple[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The JSON answer of MLflow's REST endpoint ``path`` (``2.0/mlflow/...``); a refusal as one of our errors."""
    response = request(method, f"api/{path}", auth=auth, **kwargs)
    if response.ok:
        return response.json() if response.content else {}
    try:
        error = response.json()
    except ValueError:
        error = {}
    message = error.get("message") or response.text[:200] or response.reason
    raise answer_error(status=response.status_code, error_code=error.get("error_code", ""), message=message)


def get(path: str, **params: Any) -> dict[str, Any]:
    return call("GET", path, params=params)


def _credentials(auth: tuple[str, str] | None) -> dict[str, Any]:
    if auth is not None:
        return {"auth": auth}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"headers": {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}}
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return {"auth": (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))}
    return {}
