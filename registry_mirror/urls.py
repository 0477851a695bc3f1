from django.urls import re_path

from .apis import (
    ModelAccessView,
    ModelAliasAcceptView,
    ModelAliasView,
    ModelVersionAdoptView,
    ModelVersionViewSet,
    RegisteredModelViewSet,
    RetrainPolicyView,
)

# The trailing slash is optional: curl users type both.
urlpatterns = [
    re_path(r"^models/?$", RegisteredModelViewSet.as_view({"get": "list"}), name="registered-model-list"),
    re_path(
        r"^models/(?P<name>[^/]+)/?$",
        RegisteredModelViewSet.as_view({"get": "retrieve"}),
        name="registered-model-detail",
    ),
    re_path(
        r"^models/(?P<name>[^/]+)/versions/?$",
        ModelVersionViewSet.as_view({"get": "list"}),
        name="model-version-list",
    ),
    re_path(
        r"^models/(?P<name>[^/]+)/versions/(?P<version>[0-9]+)/?$",
        ModelVersionViewSet.as_view({"get": "retrieve"}),
        name="model-version-detail",
    ),
    re_path(r"^models/(?P<name>[^/]+)/access/?$", ModelAccessView.as_view(), name="model-access"),
    re_path(r"^models/(?P<name>[^/]+)/retrain-policy/?$", RetrainPolicyView.as_view(), name="model-retrain-policy"),
    re_path(
        r"^models/(?P<name>[^/]+)/versions/(?P<version>[0-9]{1,9})/adopt/?$",
        ModelVersionAdoptView.as_view(),
        name="model-version-adopt",
    ),
    re_path(
        r"^models/(?P<name>[^/]+)/aliases/(?P<alias>[^/]+)/accept/?$",
        ModelAliasAcceptView.as_view(),
        name="model-alias-accept",
    ),
    re_path(
        r"^models/(?P<name>[^/]+)/aliases/(?P<alias>[^/]+)/?$",
        ModelAliasView.as_view(),
        name="model-alias",
    ),
]
