"""``/models/``: read-only listings of the registry mirror, for curl users (token auth, paginated).

Answers come from the mirror, not from MLflow, so they cost one database query and reflect the last sync.
``?include_deleted=true`` also lists what was deleted in MLflow.
"""

from django.shortcuts import get_object_or_404
from rest_framework import viewsets

from . import selectors
from .serializers import ModelVersionDetailSerializer, ModelVersionSerializer, RegisteredModelSerializer


def _include_deleted(request) -> bool:
    return request.query_params.get("include_deleted", "").lower() in ("1", "true", "yes")


class RegisteredModelViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RegisteredModelSerializer
    lookup_field = "name"

    def get_queryset(self):
        return selectors.registered_model_list(include_deleted=_include_deleted(self.request))


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ModelVersionSerializer
    lookup_field = "version"

    def get_queryset(self):
        name = self.kwargs["name"]
        include_deleted = _include_deleted(self.request) or self.action == "retrieve"
        get_object_or_404(selectors.registered_model_list(include_deleted=True), name=name)
        return selectors.model_version_list(name=name, include_deleted=include_deleted)

    def get_serializer_class(self):
        return ModelVersionDetailSerializer if self.action == "retrieve" else ModelVersionSerializer
