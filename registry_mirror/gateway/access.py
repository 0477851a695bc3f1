"""The services' own MLflow account on a server behind its basic auth (``mlflow server --app-name basic-auth``).

The services sign in as a plain user, never the admin: it creates the experiment and the registered models it
uses, which makes it their manager, and may do nothing to users or to anyone else's models. People get a viewer
account for the MLflow UI, which reads everything (the server's ``default_permission = READ``) and changes
nothing MDS serves. The admin makes both (and keeps their passwords what the deployment says) through MLflow's
REST API.
"""

import time
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from core.errors import ApplicationError, MlflowUnavailable


@dataclass(frozen=True)
class AppUserResult:
    created: bool
    granted: list[str]


def app_user_provision(
    *, admin: tuple[str, str], app: tuple[str, str], experiment_name: str, wait_seconds: float = 90.0
) -> AppUserResult:
    """Make the app user ``app`` (username, password) as the admin, or set its password if it exists; then give it
    MANAGE on the services' experiment and every registered model that it cannot manage yet (made before it,
    when the services signed in as the admin). Running it again changes nothing."""
    if app[0] == admin[0]:
        raise ApplicationError("The services' MLflow user must not be the admin account.", code="invalid_input")
    session = _admin_session(admin, wait_seconds)
    created = _user_upsert(session, app)
    granted = []
    for resource_type, resource_id in _resources(session, experiment_name):
        if _grant(session, app[0], resource_type, resource_id):
            granted.append(f"{resource_type} {resource_id}")
    return AppUserResult(created=created, granted=granted)


def viewer_user_provision(
    *,
    admin: tuple[str, str],
    viewer: tuple[str, str],
    app_username: str,
    experiment_name: str,
    wait_seconds: float = 90.0,
) -> AppUserResult:
    """Make the people's read-only MLflow user ``viewer`` (username, password) as the admin, or set its password if
    it exists; then bring any higher permission it holds on the services' experiment or models (granted by hand
    in the UI) down to READ. New models need nothing: the server's default permission is READ. ``granted`` names
    the resources it was set on. Running it again changes nothing."""
    if viewer[0] in (admin[0], app_username):
        raise ApplicationError(
            "The MLflow viewer must be an account of its own, neither the admin nor the services' user.",
            code="invalid_input",
        )
    session = _admin_session(admin, wait_seconds)
    created = _user_upsert(session, viewer)
    granted = []
    for resource_type, resource_id in _resources(session, experiment_name):
        if _read_only(session, viewer[0], resource_type, resource_id):
            granted.append(f"{resource_type} {resource_id}")
    return AppUserResult(created=created, granted=granted)


def _admin_session(admin: tuple[str, str], wait_seconds: float) -> requests.Session:
    session = requests.Session()
    session.auth = admin
    _wait_until_up(session, admin[0], wait_seconds)
    return session


def _user_upsert(session: requests.Session, user: tuple[str, str]) -> bool:
    """Create ``user`` as a plain account, or set its password; True when it was created."""
    created = True
    try:
        _call(session, "POST", "2.0/mlflow/users/create", json={"username": user[0], "password": user[1]})
    except _AlreadyExists:
        created = False
        _call(session, "PATCH", "2.0/mlflow/users/update-password", json={"username": user[0], "password": user[1]})
    # An account made by hand with the same name may have been an admin.
    _call(session, "PATCH", "2.0/mlflow/users/update-admin", json={"username": user[0], "is_admin": False})
    return created


class _AlreadyExists(Exception):
    pass


def _url(path: str) -> str:
    return f"{settings.MLFLOW_TRACKING_URI.rstrip('/')}/api/{path}"


def _call(session: requests.Session, method: str, path: str, **kwargs) -> dict[str, Any]:
    try:
        response = session.request(method, _url(path), timeout=settings.MLFLOW_HTTP_REQUEST_TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise MlflowUnavailable(f"MLflow is unreachable: {exc}") from exc
    if response.ok:
        return response.json() if response.content else {}
    try:
        error = response.json()
    except ValueError:
        error = {"message": response.text[:200]}
    if error.get("error_code") == "RESOURCE_ALREADY_EXISTS":
        raise _AlreadyExists(error.get("message", ""))
    message = f"MLflow answered {method} {path} with HTTP {response.status_code}: {error.get('message', '')}"
    if response.status_code >= 500:
        raise MlflowUnavailable(message)
    raise ApplicationError(message, code="registry_error", extra={"mlflow_error": error.get("error_code", "")})


def _wait_until_up(session: requests.Session, username: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if session.get(_url("2.0/mlflow/users/get"), params={"username": username}, timeout=5).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise MlflowUnavailable(f"MLflow did not accept the admin's sign-in within {wait_seconds:.0f} s")
        time.sleep(1)


def _resources(session: requests.Session, experiment_name: str) -> list[tuple[str, str]]:
    found = []
    experiment = _experiment_id(session, experiment_name)
    if experiment:
        found.append(("experiment", experiment))
    page_token = None
    while True:
        params = {"max_results": 1000, **({"page_token": page_token} if page_token else {})}
        page = _call(session, "GET", "2.0/mlflow/registered-models/search", params=params)
        found += [("registered_model", model["name"]) for model in page.get("registered_models", [])]
        page_token = page.get("next_page_token")
        if not page_token:
            return found


def _experiment_id(session: requests.Session, name: str) -> str | None:
    try:
        found = _call(session, "GET", "2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
    except ApplicationError as exc:
        if exc.extra.get("mlflow_error") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return found["experiment"]["experiment_id"]


def _grant(session: requests.Session, username: str, resource_type: str, resource_id: str) -> bool:
    """MANAGE on one resource unless the user has it already (as its creator, or from an earlier run)."""
    query = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
    if _call(session, "GET", "3.0/mlflow/users/permissions/get", params=query).get("permission") == "MANAGE":
        return False
    try:
        _call(session, "POST", "3.0/mlflow/users/permissions/grant", json={**query, "permission": "MANAGE"})
    except _AlreadyExists:
        return False
    return True


def _read_only(session: requests.Session, username: str, resource_type: str, resource_id: str) -> bool:
    """READ on one resource, replacing any other permission the user holds there; False when it had READ."""
    query = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
    if _call(session, "GET", "3.0/mlflow/users/permissions/get", params=query).get("permission") == "READ":
        return False
    try:
        _call(session, "POST", "3.0/mlflow/users/permissions/revoke", json=query)
    except ApplicationError as exc:
        # No grant of its own: the server's default permission applied.
        if exc.extra.get("mlflow_error") != "RESOURCE_DOES_NOT_EXIST":
            raise
    _call(session, "POST", "3.0/mlflow/users/permissions/grant", json={**query, "permission": "READ"})
    return True
