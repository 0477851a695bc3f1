"""``/predict``: predictions for the rows of a CSV from a registered model version."""

from django.conf import settings
from rest_framework import viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from registry_mirror.http import request_params

from .serializers import PredictionRequestSerializer, PredictionSerializer
from .services import prediction_create


class PredictionViewSet(viewsets.GenericViewSet):
    serializer_class = PredictionSerializer
    parser_classes = [MultiPartParser, FormParser]

    def create(self, request):
        params = PredictionRequestSerializer(data=request_params(request))
        params.is_valid(raise_exception=True)
        options = params.validated_data
        prediction = prediction_create(
            model_name=options.get("model_name") or settings.MDS_DEFAULT_MODEL_NAME,
            version=options["version"],
            model_format=options["format"],
            csv=options["file"].read(),
        )
        return Response(self.get_serializer(prediction).data, headers={"X-Model-Version": str(prediction.version)})
