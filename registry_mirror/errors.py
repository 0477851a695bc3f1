"""Domain errors shared by every app; pure Python, so pure modules can raise them too."""

from typing import Any


class ApplicationError(Exception):
    """A problem the caller can fix or must know about; the API renders it as ``{"message", "code", "extra"}``.

    ``code`` is a stable machine-readable name; the API maps ``not_found`` to 404, ``untrusted_artifact`` to 409,
    ``too_large`` to 413, ``unavailable`` to 503 and everything else to 400.
    """

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.extra = extra or {}


class NotFound(ApplicationError):
    code = "not_found"


class RegistryUnavailable(ApplicationError):
    """MLflow could not be reached: a transient fault, worth retrying."""

    code = "unavailable"
