"""Errors as the Open Inference Protocol answers them: an HTTP status and ``{"error": message}`` (plus MDS's stable
``code``), the same for REST and gRPC (which maps the status to its own codes, ``grpc_server.STATUS_CODES``).
"""

import logging
from dataclasses import dataclass

from rest_framework import exceptions

from core import faults
from core.errors import ApplicationError, Unavailable, http_status

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolError:
    status: int
    message: str
    code: str
    retry_after: int | None = None

    def body(self) -> dict:
        return {"error": self.message, "code": self.code}


def protocol_error(exc: BaseException) -> ProtocolError:
    """``exc`` as the answer a client gets: 400 bad input, 401/403, 404, 409, 413, 429, 503; 500 otherwise."""
    error = faults.unavailable(exc) or exc
    if isinstance(error, ApplicationError):
        retry_after = error.retry_after if isinstance(error, Unavailable) else None
        return ProtocolError(http_status(error), error.message, error.code, retry_after)
    if isinstance(exc, exceptions.NotAuthenticated):
        message = "No token: send `Authorization: Token <key>` (or `Bearer <key>`; gRPC: `authorization` metadata)."
        return ProtocolError(401, message, exc.default_code)
    if isinstance(exc, exceptions.AuthenticationFailed):
        return ProtocolError(401, str(exc.detail), exc.default_code)
    if isinstance(exc, exceptions.Throttled):
        seconds = getattr(exc, "wait", None)
        wait = int(seconds) + 1 if seconds is not None else None
        return ProtocolError(429, str(exc.detail), "throttled", wait)
    if isinstance(exc, exceptions.APIException):
        return ProtocolError(exc.status_code, str(exc.detail), str(exc.default_code))
    logger.exception("Unhandled error in the inference protocol", exc_info=exc)
    return ProtocolError(500, "Internal server error.", "internal_error")
