"""The API's JSON parser: refuses text no database column can hold (see ``core.middleware``) as a 400 naming it."""

from typing import Any

from rest_framework.parsers import JSONParser

from .middleware import UNSTORABLE, unstorable_input


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, plus a refusal of NUL and lone surrogates (``"\\u0000"``, ``"\\ud800"``) anywhere."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        where = _unstorable_path(data, "body")
        if where is not None:
            raise unstorable_input(where)
        return data


def _unstorable_path(value: Any, path: str) -> str | None:
    """The path (``body.items[2]``) of the first string holding NUL or a lone surrogate, else ``None``."""
    if isinstance(value, str):
        return path if UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if UNSTORABLE.search(key):
                return path
            found = _unstorable_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
