"""``/health`` (liveness) and ``/health/ready`` (readiness: each dependency's state, and the loaded versions).

``/health`` touches nothing: a process that answers is alive. ``/health/ready`` checks the database, the broker,
the dataset storage (S3) and MLflow, in parallel and each within ``MDS_READY_TIMEOUT`` seconds (the database within
its connect timeout), and answers 200 while this process serves, with ``"status": "degraded"`` and the failing
dependency's error when one is down: a shared dependency being down is no reason for a load balancer to take every
instance out at once. A balancer that should act on some of them names them: ``/health/ready?require=database,broker``
answers 503 (with ``Retry-After``) when one of those is down.

Anonymous callers (load balancers) get the status and each dependency's ``ok``; the details (hosts, error texts,
loaded versions) go only to an authenticated staff user or a token holder, since they map the deployment.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.http import JsonResponse
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.settings import api_settings

from core import health
from inference.services import model_cache_status
from registry_mirror import gateway

_executor = ThreadPoolExecutor(max_workers=3, thread_name_prefix="ready-check")


def live(request):
    """Liveness: the process answers; deliberately touches neither the database nor MLflow."""
    return JsonResponse({"status": "ok"})


def ready(request):
    checks: dict[str, Callable[[], str]] = {
        "broker": health.broker_check,
        "s3": health.storage_check,
        "mlflow": lambda: gateway.tracking_server_check(timeout=settings.MDS_READY_TIMEOUT),
    }
    required = [name for name in request.GET.get("require", "").split(",") if name]
    unknown = sorted(set(required) - {"database", *checks})
    if unknown:
        return JsonResponse(
            {
                "message": f"Unknown dependency {unknown[0]!r}.",
                "code": "invalid_input",
                "extra": {"known": sorted(["database", *checks])},
            },
            status=400,
        )
    futures = {name: _executor.submit(_timed, check) for name, check in checks.items()}
    # Django's connection belongs to the request's thread: its check runs here, meanwhile the others run.
    dependencies = {"database": _timed(health.database_check)}
    dependencies |= {name: future.result() for name, future in futures.items()}
    down = [name for name, state in dependencies.items() if not state["ok"]]
    body = {**model_cache_status(), "status": "degraded" if down else "ready", "dependencies": dependencies}
    if not _may_see_details(request):
        body = {"status": body["status"], "dependencies": {name: {"ok": s["ok"]} for name, s in dependencies.items()}}
    if any(name in down for name in required):
        return JsonResponse(body, status=503, headers={"Retry-After": "5"})
    return JsonResponse(body)


def _may_see_details(request) -> bool:
    """A valid API token, or a staff user's session (the inference server's lean chain has no sessions)."""
    # api_settings imports the classes the setting names; drf-stubs types them as the names.
    authenticators = [auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]  # type: ignore[operator]
    drf_request = Request(request, authenticators=authenticators)
    try:
        authenticated = drf_request.user.is_authenticated
    except AuthenticationFailed:
        # A wrong or expired token is no reason to fail a health check: it just sees what anyone sees.
        return False
    return authenticated and (drf_request.auth is not None or drf_request.user.is_staff)


def _timed(check: Callable[[], str]) -> dict:
    started = time.monotonic()
    try:
        detail = check()
    except Exception as exc:  # any failure of a check is the answer it gives, never a 500
        return {"ok": False, "ms": _ms(started), "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "ms": _ms(started), "detail": detail}


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
