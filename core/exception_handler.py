"""One error format for the whole API: ``{"message": str, "code": str, "extra": dict}``.

A dependency that is down (database, S3, broker, MLflow) is a 503 with ``Retry-After``, never a 500: in DRF
views through ``api_exception_handler``, everywhere else (the admin, middleware) through ``server_error``, the
URLconf's ``handler500``.
"""

import logging
import sys

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from . import faults
from .errors import ApplicationError, Unavailable, http_status

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    error = faults.unavailable(exc) or exc
    if isinstance(error, ApplicationError):
        if error is not exc:
            logger.warning("Answering 503 for %s: %s", type(exc).__name__, exc)
        body = {"message": error.message, "code": error.code, "extra": error.extra}
        return Response(body, status=http_status(error), headers=_retry_after(error))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        body = {"message": "Internal server error.", "code": "internal_error", "extra": {}}
        return Response(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "message": _first_message(response.data),
            "code": "invalid_input",
            "extra": {"fields": response.data},
        }
    else:
        detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        extra = {"retry_after_seconds": int(response["Retry-After"])} if response.has_header("Retry-After") else {}
        response.data = {"message": str(detail), "code": getattr(exc, "default_code", "error"), "extra": extra}
    return response


def _first_message(errors, path: str = "") -> str:
    """``"field: message"`` for the first error of a DRF error tree, so the message names what is wrong."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            label = key if key != "non_field_errors" else ""
            return _first_message(value, f"{path}.{label}" if path and label else (label or path))
    if isinstance(errors, list) and errors:
        return _first_message(errors[0], path)
    return f"{path}: {errors}" if path else str(errors)


def server_error(request):
    """``handler500``: a dependency fault outside DRF (admin pages, middleware) is a 503 too; anything else 500."""
    error = faults.unavailable(sys.exc_info()[1])
    if error is None:
        return defaults.server_error(request)
    body = {"message": error.message, "code": error.code, "extra": error.extra}
    return JsonResponse(body, status=http_status(error), headers=_retry_after(error))


def _retry_after(error: ApplicationError) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after)} if isinstance(error, Unavailable) else {}
