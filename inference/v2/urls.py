"""The Open Inference Protocol's REST routes, under ``/v2``."""

from django.urls import path, re_path

from . import rest


def _not_found(request, rest_of_path: str = ""):
    return rest.json_response({"error": f"There is no route /v2/{rest_of_path}.", "code": "not_found"}, 404)


MODEL = "v2/models/<str:name>"
VERSION = "v2/models/<str:name>/versions/<str:version>"

urlpatterns = [
    path("v2", rest.ServerMetadataView.as_view(), name="v2-server"),
    path("v2/health/live", rest.LiveView.as_view(), name="v2-live"),
    path("v2/health/ready", rest.ReadyView.as_view(), name="v2-ready"),
    path(MODEL, rest.ModelMetadataView.as_view(), name="v2-model"),
    path(VERSION, rest.ModelMetadataView.as_view(), name="v2-model-version"),
    path(f"{MODEL}/ready", rest.ModelReadyView.as_view(), name="v2-model-ready"),
    path(f"{VERSION}/ready", rest.ModelReadyView.as_view(), name="v2-model-version-ready"),
    path(f"{MODEL}/infer", rest.InferView.as_view(), name="v2-infer"),
    path(f"{VERSION}/infer", rest.InferView.as_view(), name="v2-infer-version"),
    # Anything else under /v2 is the protocol's 404, not an HTML page.
    re_path(r"^v2/(?P<rest_of_path>.*)$", _not_found),
]
