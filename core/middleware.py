"""Refuses text no database column can hold before any view sees it: a 400, never a 500 from the database.

PostgreSQL's text types refuse NUL (psycopg raises ``DataError``) and UTF-8 has no lone surrogates
(``UnicodeEncodeError`` when the value is sent), so a ``%00`` in a model name was a 500 on PostgreSQL and a 404
on SQLite. Checked here once for the path and the query string; JSON bodies are checked by
``core.parsers.StrictJSONParser`` and ``/train``'s form fields by ``core.http.request_params`` (DRF's and
Django's form fields refuse NUL themselves). Bodies are not read here: ``/train`` streams its upload through
handlers set later, in the view.
"""

import re
from collections.abc import Iterable

from django.http import JsonResponse

from .errors import ApplicationError

# NUL, and a UTF-16 surrogate code point, which only a lone (unpaired) surrogate leaves in a Python str.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_input(parameter: str) -> ApplicationError:
    return ApplicationError(
        f"The parameter {parameter[:100]!r} holds a NUL character or a lone surrogate, which no text can hold.",
        code="invalid_input",
        extra={"parameter": parameter[:100]},
    )


def unstorable_parameter(items: Iterable[tuple[str, object]]) -> str | None:
    """The name of the first parameter whose name or (text) value holds NUL or a lone surrogate, else ``None``."""
    for name, value in items:
        if UNSTORABLE.search(name) or (isinstance(value, str) and UNSTORABLE.search(value)):
            return UNSTORABLE.sub("?", name)
    return None


class UnstorableInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        parameter = self.unstorable(request)
        if parameter is None:
            return self.get_response(request)
        error = unstorable_input(parameter)
        return JsonResponse({"message": error.message, "code": error.code, "extra": error.extra}, status=400)

    @staticmethod
    def unstorable(request) -> str | None:
        if UNSTORABLE.search(request.path_info):
            return "path"
        return unstorable_parameter(request.GET.items())
