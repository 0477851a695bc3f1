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

from core.errors import ApplicationError, MlflowUnavailable

from . import rest

Admin = tuple[str, str]


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
    _wait_until_up(admin, wait_seconds)
    created = _user_upsert(admin, app)
    granted = []
    for resource_type, resource_id in _resources(admin, experiment_name):
        if _grant(admin, app[0], resource_type, resource_id):
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
    _wait_until_up(admin, wait_seconds)
    created = _user_upsert(admin, viewer)
    granted = []
    for resource_type, resource_id in _resources(admin, experiment_name):
        if _read_only(admin, viewer[0], resource_type, resource_id):
            granted.append(f"{resource_type} {resource_id}")
    return AppUserResult(created=created, granted=granted)


def _user_upsert(admin: Admin, user: tuple[str, str]) -> bool:
    """Create ``user`` as a plain account, or set its password; True when it was created."""
    created = True
    try:
        _call(admin, "POST", "2.0/mlflow/users/create", json={"username": user[0], "password": user[1]})
    except _AlreadyExists:
        created = False
        _call(admin, "PATCH", "2.0/mlflow/users/update-password", json={"username": user[0], "password": user[1]})
    # An account made by hand with the same name may have been an admin.
    _call(admin, "PATCH", "2.0/mlflow/users/update-admin", json={"username": user[0], "is_admin": False})
    return created


class _AlreadyExists(Exception):
    pass


def _call(admin: Admin, method: str, path: str, **kwargs) -> dict[str, Any]:
    try:
        return rest.call(method, path, auth=admin, **kwargs)
    except ApplicationError as exc:
        if exc.extra.get("mlflow_error") == "RESOURCE_ALREADY_EXISTS":
            raise _AlreadyExists(exc.message) from exc
        raise


def _wait_until_up(admin: Admin, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if rest.request(
                "GET", "api/2.0/mlflow/users/get", auth=admin, params={"username": admin[0]}, timeout=5
            ).ok:
                return
        except MlflowUnavailable:
            pass
        if time.monotonic() > deadline:
            raise MlflowUnavailable(f"MLflow did not accept the admin's sign-in within {wait_seconds:.0f} s")
        time.sleep(1)


def _resources(admin: Admin, experiment_name: str) -> list[tuple[str, str]]:
    found = []
    experiment = _experiment_id(admin, experiment_name)
    if experiment:
        found.append(("experiment", experiment))
    page_token = None
    while True:
        params = {"max_results": 1000, **({"page_token": page_token} if page_token else {})}
        page = _call(admin, "GET", "2.0/mlflow/registered-models/search", params=params)
        found += [("registered_model", model["name"]) for model in page.get("registered_models", [])]
        page_token = page.get("next_page_token")
        if not page_token:
            return found


def _experiment_id(admin: Admin, name: str) -> str | None:
    try:
        found = _call(admin, "GET", "2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
    except ApplicationError as exc:
        if exc.extra.get("mlflow_error") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return found["experiment"]["experiment_id"]


def _grant(admin: Admin, username: str, resource_type: str, resource_id: str) -> bool:
    """MANAGE on one resource unless the user has it already (as its creator, or from an earlier run)."""
    query = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
    if _call(admin, "GET", "3.0/mlflow/users/permissions/get", params=query).get("permission") == "MANAGE":
        return False
    try:
        _call(admin, "POST", "3.0/mlflow/users/permissions/grant", json={**query, "permission": "MANAGE"})
    except _AlreadyExists:
        return False
    return True


def _read_only(admin: Admin, username: str, resource_type: str, resource_id: str) -> bool:
    """READ on one resource, replacing any other permission the user holds there; False when it had READ."""
    query = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
    if _call(admin, "GET", "3.0/mlflow/users/permissions/get", params=query).get("permission") == "READ":
        return False
    try:
        _call(admin, "POST", "3.0/mlflow/users/permissions/revoke", json=query)
    except ApplicationError as exc:
        # No grant of its own: the server's default permission applied.
        if exc.extra.get("mlflow_error") != "RESOURCE_DOES_NOT_EXIST":
            raise
    _call(admin, "POST", "3.0/mlflow/users/permissions/grant", json={**query, "permission": "READ"})
    return True
