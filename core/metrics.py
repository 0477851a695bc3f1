"""``/metrics``: every app's Prometheus metrics, for a scraper holding an API token or on the loopback interface.

The apps define their metrics with ``prometheus_client`` (``inference.metrics``) or register collectors that
read the database at scrape time (``training.metrics``, via ``collector_register``). Under both servers
``PROMETHEUS_MULTIPROC_DIR`` is set (``mds_project/server_process.py``) and a scrape sums the files of all worker
processes, live and dead, whichever worker answers it; without it (``runserver``, tests) the process's own
registry answers.

Access: a request with a valid ``Authorization: Token …`` (any API user), or one from 127.0.0.1/::1 that carries
no ``X-Forwarded-For``/``Forwarded`` header (a proxy in front would make every client look local). Set
``MDS_METRICS_ALLOW_LOOPBACK=false`` where a proxy on the same machine does not add those headers.
"""

import ipaddress
import os

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from .auth import TokenAuthentication

_collectors: list = []


def collector_register(collector) -> None:
    """Add a collector (an object with ``collect()``) to every scrape; a repeated registration is ignored."""
    if all(type(known) is not type(collector) for known in _collectors):
        _collectors.append(collector)


def metrics_text() -> tuple[bytes, str]:
    """The exposition text of all metrics and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client.multiprocess import MultiProcessCollector

        processes = CollectorRegistry()
        MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    apps = CollectorRegistry(auto_describe=False)
    for collector in _collectors:
        apps.register(collector)
    return generate_latest(processes) + generate_latest(apps), CONTENT_TYPE_LATEST


def is_local_request(request) -> bool:
    """From the loopback interface, and not relayed by a proxy that says so."""
    meta = request.META
    if any(meta.get(header) for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")):
        return False
    try:
        return ipaddress.ip_address(meta.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


class TokenOrLoopback(BasePermission):
    def has_permission(self, request, view) -> bool:
        if request.user and request.user.is_authenticated:
            return True
        return settings.MDS_METRICS_ALLOW_LOOPBACK and is_local_request(request)


class MetricsView(APIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [TokenOrLoopback]

    @extend_schema(responses={200: OpenApiTypes.STR}, description="Prometheus text exposition format.")
    def get(self, request):
        body, content_type = metrics_text()
        return HttpResponse(body, content_type=content_type)
