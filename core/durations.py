"""Durations as people type them in a query string or a policy: ``90d``, ``36h``, ``2w``. Pure: no Django."""

import re
from datetime import timedelta

from .errors import ApplicationError

_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_DURATION = re.compile(r"^\s*([0-9]{1,6})\s*([hdw])\s*$", re.IGNORECASE)


def duration_parse(text: str, *, field: str) -> timedelta:
    """``text`` ("365d", "48h", "2w") as a positive ``timedelta``.

    Raises:
        ApplicationError: ``invalid_duration`` naming ``field`` and the text.
    """
    match = _DURATION.match(text or "")
    if match is None or int(match.group(1)) == 0:
        raise ApplicationError(
            f"{field} must be a positive whole number of hours, days or weeks, such as 48h, 90d or 2w (got {text!r}).",
            code="invalid_duration",
            extra={"field": field, "value": text},
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def duration_normalise(text: str, *, field: str) -> str:
    """``text`` checked and written the one way (``" 90D"`` -> ``"90d"``); empty stays empty."""
    if not (text or "").strip():
        return ""
    duration_parse(text, field=field)
    return text.strip().lower()
