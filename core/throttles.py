"""Per-user request rates read from settings, counted in Django's cache.

The cache is shared by every process when it is Redis (``CACHE_URL``/``REDIS_URL``), so a limit holds across
gunicorn workers and servers; in the embedded mode it is the process's memory.
"""

import logging

from django.conf import settings
from rest_framework.throttling import UserRateThrottle

from . import faults

logger = logging.getLogger(__name__)


class SettingRateThrottle(UserRateThrottle):
    """A ``UserRateThrottle`` whose rate (``"30/hour"``; empty or ``off`` for none) is the setting ``setting``.

    Read on every request rather than from ``DEFAULT_THROTTLE_RATES`` at import, so tests and deployments can
    change it like any other setting.
    """

    setting = ""

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:
            if faults.unavailable(exc) is None:
                raise
            # The counters live in Redis, the broker's server: while it is down a request is let through (and a
            # /train is accepted, its job sent later) rather than refused for want of a count.
            logger.warning("Throttle %s not counted, its cache is unavailable: %s", self.scope, exc)
            return True

    def get_rate(self) -> str | None:
        rate = str(getattr(settings, self.setting, "") or "").strip()
        return None if rate.lower() in ("", "off", "none", "0") else rate
