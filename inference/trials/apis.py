"""``/models/<name>/trial``: start, read, stop and decide a model's live trial (maintainers; readers may look)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import requires

from ..models import Trial
from .services import trial_as_dict, trial_decide, trial_start, trial_status, trial_stop

CanReadModels = requires("registry_mirror.view_registeredmodel", "registry_mirror.view_modelversion")
CanMoveAliases = requires("registry_mirror.set_alias")


class TrialStartSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Trial.Mode.values, default=Trial.Mode.SHADOW)
    share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    policy = serializers.ChoiceField(choices=Trial.Policy.values, default=Trial.Policy.AUTO)
    confidence = serializers.FloatField(min_value=0.5, max_value=0.999999, required=False)
    min_paired_rows = serializers.IntegerField(min_value=2, max_value=10_000_000, required=False)
    guard_error_factor = serializers.FloatField(min_value=1.0, max_value=1000.0, required=False)
    guard_error_rate = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    guard_min_rows = serializers.IntegerField(min_value=2, max_value=10_000_000, required=False)

    def validate(self, attrs: dict) -> dict:
        if attrs["mode"] == Trial.Mode.CANARY and "share" not in attrs:
            raise serializers.ValidationError(
                {"share": "A canary needs the share of requests the challenger answers."}
            )
        return attrs


class TrialDecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["promote", "rollback"])
    force = serializers.BooleanField(default=False)


class TrialView(APIView):
    """GET: the running trial with its live comparison, and the ended ones. POST: start one (maintainers)."""

    def get_permissions(self):
        return [(CanReadModels if self.request.method == "GET" else CanMoveAliases)()]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, description="The running trial (or null) and the history.")
    def get(self, request, name: str):
        return Response(trial_status(model_name=name))

    @extend_schema(
        request=TrialStartSerializer,
        responses={201: OpenApiTypes.OBJECT},
        description="Start a trial of @challenger against @champion; 409 without @challenger or while one runs.",
    )
    def post(self, request, name: str):
        options = TrialStartSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        trial = trial_start(model_name=name, user=request.user, **options.validated_data)
        return Response(trial_as_dict(trial), status=201)


class TrialStopView(APIView):
    permission_classes = [CanMoveAliases]

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT}, description="End the trial, no decision.")
    def post(self, request, name: str):
        return Response(trial_as_dict(trial_stop(model_name=name, user=request.user)))


class TrialDecideView(APIView):
    permission_classes = [CanMoveAliases]

    @extend_schema(
        request=inline_serializer(
            "TrialDecision",
            {
                "decision": serializers.ChoiceField(choices=["promote", "rollback"]),
                "force": serializers.BooleanField(),
            },
        ),
        responses={200: OpenApiTypes.OBJECT},
        description="A maintainer's decision: promote (through the promotion gate; `force` as for aliases) or "
        "rollback.",
    )
    def post(self, request, name: str):
        params = TrialDecideSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        trial = trial_decide(model_name=name, user=request.user, **params.validated_data)
        return Response(trial_as_dict(trial))
