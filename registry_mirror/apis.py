"""``/models/``: read-only listings of the registry mirror, moving aliases (promotion), adopting versions, and
models' owners.

Listings come from the mirror, not from MLflow, so they cost one database query and reflect the last sync.
``?include_deleted=true`` also lists what was deleted in MLflow. ``aliases`` and ``served`` say what MDS serves
(its own record); ``mlflow_aliases`` where MLflow's aliases point. Moving an alias, accepting one moved directly in
MLflow and adopting a version registered there are the only ways to change what is served; maintainers only.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import requires

from . import selectors
from .serializers import (
    AdoptionSerializer,
    AliasAcceptSerializer,
    AliasMoveSerializer,
    AliasSetSerializer,
    ModelAccessSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    RegisteredModelSerializer,
    RetrainPolicySerializer,
)
from .services import (
    model_access_set,
    model_alias_accept,
    model_alias_remove,
    model_alias_set,
    model_version_adopt,
    retrain_policy_get,
    retrain_policy_set,
)

CanReadModels = requires("registry_mirror.view_registeredmodel", "registry_mirror.view_modelversion")
CanSetAlias = requires("registry_mirror.set_alias")
CanShareModels = requires("registry_mirror.share_model")


def _include_deleted(request) -> bool:
    return request.query_params.get("include_deleted", "").lower() in ("1", "true", "yes")


class RegisteredModelViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RegisteredModelSerializer
    permission_classes = [CanReadModels]
    lookup_field = "name"

    def get_queryset(self):
        return selectors.registered_model_list(include_deleted=_include_deleted(self.request)).prefetch_related(
            "shared_with"
        )

    def get_serializer_context(self):
        names = [self.kwargs["name"]] if "name" in self.kwargs else None
        return {**super().get_serializer_context(), "served_aliases": selectors.served_aliases_by_model(names=names)}


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ModelVersionSerializer
    permission_classes = [CanReadModels]
    lookup_field = "version"

    def get_queryset(self):
        name = self.kwargs["name"]
        include_deleted = _include_deleted(self.request) or self.action == "retrieve"
        get_object_or_404(selectors.registered_model_list(include_deleted=True), name=name)
        return selectors.model_version_list(name=name, include_deleted=include_deleted)

    def get_serializer_class(self):
        return ModelVersionDetailSerializer if self.action == "retrieve" else ModelVersionSerializer

    def get_serializer_context(self):
        name = self.kwargs["name"]
        return {
            **super().get_serializer_context(),
            "served_aliases": selectors.served_aliases_of(name=name),
            "origins": selectors.version_origins(name=name),
        }


class ModelAliasView(APIView):
    """Point an alias at a version (promotion, gated by holdout RMSE) or remove it; maintainers only."""

    permission_classes = [CanSetAlias]

    @extend_schema(
        request=AliasSetSerializer,
        responses={200: AliasMoveSerializer},
        description="Moves the alias in MDS's promotion record (what is served) and in MLflow, and audits it. 409 "
        "`version_not_adopted` for a version registered directly in MLflow that no maintainer adopted; 409 "
        "`worse_than_current` if the version's holdout RMSE is worse than the current holder's by more than "
        'MDS_PROMOTION_TOLERANCE, unless `"force": true`. Every inference process serves the move within '
        "MDS_ALIAS_TTL seconds.",
    )
    def post(self, request, name: str, alias: str):
        params = AliasSetSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        move = model_alias_set(
            name=name,
            alias=alias,
            version=params.validated_data["version"],
            force=params.validated_data["force"],
            user=request.user,
        )
        return Response(_move_body(name, alias, params.validated_data["version"], move))

    @extend_schema(request=None, responses={200: AliasMoveSerializer}, description="Removes the alias.")
    def delete(self, request, name: str, alias: str):
        move = model_alias_remove(name=name, alias=alias, user=request.user)
        body = {
            "model_name": name,
            "alias": move.alias,
            "version": None,
            "previous_version": move.from_version,
            "moved": True,
            "forced": False,
        }
        return Response(body, status=status.HTTP_200_OK)


class ModelAccessView(APIView):
    """Who owns a model and which groups it is shared with (who may train new versions of it); maintainers only."""

    permission_classes = [CanShareModels]

    @extend_schema(responses={200: ModelAccessSerializer}, description="The model's owner and sharing.")
    def get(self, request, name: str):
        model = get_object_or_404(selectors.registered_model_list(include_deleted=True), name=name)
        return Response(ModelAccessSerializer(model).data)

    @extend_schema(
        request=ModelAccessSerializer,
        responses={200: ModelAccessSerializer},
        description="Sets the owner (a username, or null: maintainers only) and replaces the groups the model is "
        "shared with. 400 `unknown_user` / `unknown_group` for names that match none.",
    )
    def put(self, request, name: str):
        params = ModelAccessSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        model = model_access_set(
            name=name,
            owner=params.validated_data["owner"],
            shared_with=params.validated_data["shared_with"],
        )
        return Response(ModelAccessSerializer(model).data)


def _move_body(name: str, alias: str, version: int, move) -> dict:
    body = {"model_name": name, "alias": alias.removeprefix("@"), "version": version}
    if move is None:
        return {**body, "previous_version": version, "moved": False, "forced": False}
    return {**body, "previous_version": move.from_version, "moved": True, "forced": move.forced}


class ModelAliasAcceptView(APIView):
    """Serve what an alias points at in MLflow, moved there directly: the same gate as any move; maintainers only."""

    permission_classes = [CanSetAlias]

    @extend_schema(
        request=AliasAcceptSerializer,
        responses={200: AliasMoveSerializer},
        description="Points the alias, in MDS's promotion record, at the version MLflow's alias points at now "
        "(a move made directly in MLflow, shown as external in the alias history). The version must be adopted "
        "(409 `version_not_adopted`) and passes the RMSE gate like any move (409 `worse_than_current` unless "
        '`"force": true`). 404 if MLflow has no such alias.',
    )
    def post(self, request, name: str, alias: str):
        params = AliasAcceptSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        version, move = model_alias_accept(
            name=name, alias=alias, user=request.user, force=params.validated_data["force"]
        )
        return Response(_move_body(name, alias, version, move))


class ModelVersionAdoptView(APIView):
    """Serve a version registered directly in MLflow, once its ONNX file passes the checks; maintainers only."""

    permission_classes = [CanSetAlias]

    @extend_schema(
        request=None,
        responses={200: AdoptionSerializer, 201: AdoptionSerializer},
        description="Fetches the version's ONNX file from MLflow, checks that it loads in onnxruntime with one "
        "input and that its signature names the features of the model's served versions (409 "
        "`signature_mismatch`; 400 `unservable_model`), and records its sha256: from then on `/predict` serves "
        "it (as ONNX only; its pickle is never loaded). 201 when adopted, 200 if MDS already served it.",
    )
    def post(self, request, name: str, version: str):
        record, adopted = model_version_adopt(name=name, version=int(version), user=request.user)
        body = {
            "name": record.name,
            "version": record.version,
            "origin": record.origin,
            "adopted": adopted,
            "adopted_by": record.adopted_by.get_username() if record.adopted_by else None,
            "adopted_at": record.adopted_at,
            "onnx_sha256": record.onnx_sha256,
        }
        return Response(
            AdoptionSerializer(body).data, status=status.HTTP_201_CREATED if adopted else status.HTTP_200_OK
        )


class RetrainPolicyView(APIView):
    """When a model is retrained on its dataset series without anyone asking; maintainers only."""

    permission_classes = [CanSetAlias]

    @extend_schema(
        responses={200: RetrainPolicySerializer}, description="The model's retraining policy (off if unset)."
    )
    def get(self, request, name: str):
        return Response(RetrainPolicySerializer(retrain_policy_get(name=name)).data)

    @extend_schema(
        request=RetrainPolicySerializer,
        responses={200: RetrainPolicySerializer},
        description="Sets the fields given (the others keep their value). `window` and `schedule` are durations "
        '("90d", "48h", "2w"; 400 `invalid_duration` otherwise); setting `schedule` starts its clock. Triggers: '
        "`schedule`, `on_new_data` (an append to the series), `on_drift` (the champion's inputs drift), "
        "`degradation_factor` (the champion's live MAE over this many times its holdout MAE, with at least "
        "`degradation_min_rows` rows of feedback). A retraining never starts while one of the model's is queued or "
        "running.",
    )
    def put(self, request, name: str):
        params = RetrainPolicySerializer(data=request.data)
        params.is_valid(raise_exception=True)
        policy = retrain_policy_set(name=name, values=dict(params.validated_data), user=request.user)
        return Response(RetrainPolicySerializer(policy).data)
