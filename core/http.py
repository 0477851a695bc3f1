"""Request helpers shared by the API apps."""

from typing import Any

from django.http import QueryDict

from .errors import ApplicationError
from .middleware import unstorable_input, unstorable_parameter


def request_params(request) -> dict[str, Any]:
    """Query-string options merged with form fields (the form wins) and the uploaded ``file``, if any.

    The curl examples pass options in the query string while HTML forms post them, so both are accepted. A body
    that is not a form (none at all, or JSON of any shape a parser allows) adds no fields: the serializer then
    names what is missing. Multipart fields holding NUL or a lone surrogate are refused here (``core.middleware``
    checks the query string, and cannot read a streamed upload).
    """
    data = request.data
    if isinstance(data, QueryDict):
        form = data.dict()
    elif isinstance(data, dict):
        form = dict(data)
    else:
        raise ApplicationError(
            "The request body must be a form (or an object of options); send the options as form fields or in "
            "the query string.",
            code="invalid_input",
        )
    params = {**request.query_params.dict(), **form}
    parameter = unstorable_parameter((str(name), value) for name, value in params.items())
    if parameter is not None:
        raise unstorable_input(parameter)
    if "file" in request.FILES:
        params["file"] = request.FILES["file"]
    return params
