"""The API's pagination: ``?limit=&offset=``, with a ceiling on ``limit``."""

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """``?limit=`` above ``MDS_PAGE_MAX_LIMIT`` gets that many rows: ``limit=10000000`` is not a table dump."""

    # A property, so that the setting is read per request, not at import.
    @property
    def max_limit(self) -> int:  # type: ignore[override]
        return settings.MDS_PAGE_MAX_LIMIT
