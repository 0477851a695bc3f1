"""WSGI entry point of the inference server: the prediction routes (``/predict``, ``/v2``, MLflow's ``/invocations``)
and probes through a short middleware chain.

The web app's chain (sessions, CSRF, messages, static files, frame options) costs about as much per request
as the model does for one row, and token-authenticated prediction needs none of it. Every other path goes
through the full chain, so this server still answers the whole API.

    python -m mds_project.inference_server   (granian; see there)
"""

import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.core.wsgi import get_wsgi_application

from inference.multipart import plain_form_boundary

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mds_project.settings.production")

LEAN_MIDDLEWARE = ("django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware")
LEAN_PATHS = ("/predict", "/health", "/v2", "/invocations", "/ping", "/version")


class LeanRequest(WSGIRequest):
    """Django's request, which reads the ``curl -F`` Content-Type with one regular expression: Django's parse of
    any header with parameters goes through ``email.message`` (~12 µs, a tenth of what a 1-row upload cost more
    than the same rows as text/csv). Any other Content-Type is Django's to read."""

    def _set_content_type_params(self, meta):
        content_type = meta.get("CONTENT_TYPE", "")
        # Without parameters, Django's parse is quick.
        boundary = plain_form_boundary(content_type) if ";" in content_type else None
        if boundary is None:
            super()._set_content_type_params(meta)  # type: ignore[misc]  # Django's, which its stubs leave out
        else:
            self.content_type, self.content_params = "multipart/form-data", {"boundary": boundary}


class LeanWSGIHandler(WSGIHandler):
    request_class = LeanRequest

    def load_middleware(self, is_async=False):
        # Django builds the chain from settings.MIDDLEWARE; swap it only while this handler is built (at import).
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path in LEAN_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


full_application = get_wsgi_application()
lean_application = LeanWSGIHandler()


def application(environ, start_response):
    lean = environ.get("PATH_INFO", "").startswith(LEAN_PATHS)
    return (lean_application if lean else full_application)(environ, start_response)


if os.environ.get("INFERENCE_GRPC_BIND"):
    # The Open Inference Protocol over gRPC, in this worker process beside HTTP: one model cache for both.
    from inference.v2.grpc_server import grpc_server_start

    grpc_server_start(os.environ["INFERENCE_GRPC_BIND"], threads=int(os.environ.get("INFERENCE_THREADS", "8")))
