from django.conf import settings
from rest_framework import serializers

from .services import FORMATS


class PredictionRequestSerializer(serializers.Serializer):
    model_name = serializers.CharField(required=False, max_length=200)
    version = serializers.RegexField(r"^([0-9]+|latest|@?[A-Za-z0-9_\-]+)$", default="latest", max_length=200)
    format = serializers.ChoiceField(choices=FORMATS, default="onnx")
    file = serializers.FileField(allow_empty_file=True)

    def validate_model_name(self, value: str) -> str:
        return value or settings.MDS_DEFAULT_MODEL_NAME


class PredictionSerializer(serializers.Serializer):
    predictions = serializers.ListField(child=serializers.FloatField(), source="values")
    model = serializers.SerializerMethodField()

    def get_model(self, prediction) -> dict:
        return {"name": prediction.name, "version": prediction.version, "format": prediction.model_format}
