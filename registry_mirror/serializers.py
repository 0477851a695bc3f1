from urllib.parse import quote

from rest_framework import serializers

from .selectors import model_training_allowed


class RegisteredModelSerializer(serializers.Serializer):
    """A model; ``context["served_aliases"]`` holds MDS's promotion record (model name -> alias -> version)."""

    name = serializers.CharField()
    description = serializers.CharField()
    tags = serializers.DictField(child=serializers.CharField())
    aliases = serializers.SerializerMethodField(help_text="Alias -> the version MDS serves under it.")
    mlflow_aliases = serializers.DictField(
        child=serializers.IntegerField(),
        source="aliases",
        help_text="Where the aliases point in MLflow, as of the last sync; one that differs from `aliases` was "
        "moved directly in MLflow and serves nothing until a maintainer accepts it.",
    )
    created_at = serializers.DateTimeField(source="mlflow_created_at")
    updated_at = serializers.DateTimeField(source="mlflow_updated_at")
    deleted = serializers.BooleanField()
    may_train = serializers.SerializerMethodField(
        help_text="Whether the caller may train new versions of it (their own, shared with them, or a maintainer)."
    )
    versions_url = serializers.SerializerMethodField()

    def get_may_train(self, obj) -> bool:
        return model_training_allowed(model=obj, user=self.context["request"].user)

    def get_aliases(self, obj) -> dict[str, int]:
        return self.context["served_aliases"].get(obj.name, {})

    def get_versions_url(self, obj) -> str:
        return self.context["request"].build_absolute_uri(f"/models/{quote(obj.name, safe='')}/versions/")


class ModelVersionSerializer(serializers.Serializer):
    """A version; ``context["served_aliases"]`` (alias -> version) and ``context["origins"]`` (version -> origin)
    hold what MDS serves of its model."""

    name = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    description = serializers.CharField()
    aliases = serializers.SerializerMethodField(help_text="The aliases under which MDS serves this version.")
    mlflow_aliases = serializers.ListField(child=serializers.CharField(), source="aliases")
    served = serializers.SerializerMethodField(
        help_text="`trained` (by MDS), `adopted` (by a maintainer), or null: registered directly in MLflow and "
        "not served until adopted."
    )
    formats = serializers.ListField(child=serializers.CharField())
    run_id = serializers.CharField()
    model_id = serializers.CharField()
    # DRF's metaclass takes declared fields off the class: this one does not shadow ``Field.source``.
    source = serializers.CharField()  # type: ignore[assignment]
    model_uri = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    dataset_sha256 = serializers.CharField()
    training_job_key = serializers.UUIDField(source="job_key", allow_null=True)
    tags = serializers.DictField(child=serializers.CharField())
    created_at = serializers.DateTimeField(source="mlflow_created_at")
    updated_at = serializers.DateTimeField(source="mlflow_updated_at")
    deleted = serializers.BooleanField()

    def get_aliases(self, obj) -> list[str]:
        return sorted(alias for alias, number in self.context["served_aliases"].items() if number == obj.version)

    def get_served(self, obj) -> str | None:
        return self.context["origins"].get(obj.version)

    def get_model_uri(self, obj) -> str:
        return f"models:/{obj.name}/{obj.version}"

    def get_metrics(self, obj) -> dict[str, float | None]:
        return {
            "r2": obj.r2,
            "mae": obj.mae,
            "rmse": obj.rmse,
            "onnx_max_abs_diff": obj.onnx_max_abs_diff,
            "onnx_max_rel_diff": obj.onnx_max_rel_diff,
        }


class ModelVersionDetailSerializer(ModelVersionSerializer):
    params = serializers.DictField(child=serializers.CharField())
    run_metrics = serializers.DictField(child=serializers.FloatField(), source="metrics")


class AliasSetSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    force = serializers.BooleanField(default=False)


class AliasMoveSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    alias = serializers.CharField()
    version = serializers.IntegerField(allow_null=True, help_text="Where the alias points now (null: removed).")
    previous_version = serializers.IntegerField(allow_null=True)
    moved = serializers.BooleanField()
    forced = serializers.BooleanField(help_text="Moved past the promotion gate.")


class ModelAccessSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    owner = serializers.CharField(
        allow_null=True,
        max_length=150,
        help_text="Username of the owner; null: nobody owns it, only maintainers train it.",
    )
    shared_with = serializers.ListField(
        child=serializers.CharField(max_length=150),
        max_length=100,
        help_text="Groups whose members may train new versions of it, as its owner may.",
    )

    def to_representation(self, instance):
        return {
            "name": instance.name,
            "owner": instance.owner.username if instance.owner_id else None,
            "shared_with": sorted(group.name for group in instance.shared_with.all()),
        }


class AdoptionSerializer(serializers.Serializer):
    model_name = serializers.CharField(source="name")
    version = serializers.IntegerField()
    served = serializers.CharField(source="origin", help_text="`adopted`, or `trained` for a version MDS trained.")
    adopted = serializers.BooleanField(help_text="Whether this request adopted it (false: already served).")
    adopted_by = serializers.CharField(allow_null=True)
    adopted_at = serializers.DateTimeField(allow_null=True)
    onnx_sha256 = serializers.CharField()


class AliasAcceptSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False)


class RetrainPolicySerializer(serializers.Serializer):
    """A model's retraining policy; on PUT every field is optional (those left out keep their value)."""

    model_name = serializers.CharField(read_only=True)
    enabled = serializers.BooleanField(required=False)
    window = serializers.CharField(
        required=False, allow_blank=True, max_length=16, help_text='Trailing window: "365d", "90d", "48h"; "": all.'
    )
    schedule = serializers.CharField(
        required=False, allow_blank=True, max_length=16, help_text='Retrain every "6h", "1d", "2w"; "": never.'
    )
    on_new_data = serializers.BooleanField(required=False)
    on_drift = serializers.BooleanField(required=False)
    degradation_factor = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=1.0,
        help_text="Retrain when the champion's live MAE exceeds this many times its holdout MAE; null: never.",
    )
    degradation_min_rows = serializers.IntegerField(required=False, min_value=1, max_value=10_000_000)
    last_scheduled_at = serializers.DateTimeField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def validate_degradation_factor(self, value):
        if value is not None and value <= 1.0:
            raise serializers.ValidationError("Ensure this value is greater than 1.")
        return value
