"""WSGI entry point of the inference server: the prediction routes (``/predict``, ``/v2``, MLflow's ``/invocations``)
and probes through a short middleware chain.

The web app's chain (sessions, CSRF, messages, static files, frame options) costs about as much per request
as the model does for one row, and token-authenticated prediction needs none of it. Every other path goes
through the full chain, so this server still answers the whole API.

    python -m mds_project.inference_server   (granian; see there)
"""

import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mds_project.settings.production")

LEAN_MIDDLEWARE = ("django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware")
LEAN_PATHS = ("/predict", "/health", "/v2", "/invocations", "/ping", "/version")


class LeanWSGIHandler(WSGIHandler):
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
