"""Request helpers shared by the API apps."""

from typing import Any


def request_params(request) -> dict[str, Any]:
    """Query-string options merged with form fields (the form wins) and the uploaded ``file``, if any.

    The curl examples pass options in the query string while HTML forms post them, so both are accepted.
    """
    params = {**request.query_params.dict(), **request.data.dict()}
    if "file" in request.FILES:
        params["file"] = request.FILES["file"]
    return params
