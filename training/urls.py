"""Training's ``models/...`` routes: a model's dataset series and its retraining (same prefix and optional
trailing slash as the registry mirror's)."""

from django.urls import re_path

from .series_apis import RetrainView, SeriesDataView

urlpatterns = [
    re_path(r"^models/(?P<name>[^/]+)/data/?$", SeriesDataView.as_view(), name="model-series-data"),
    re_path(r"^models/(?P<name>[^/]+)/retrain/?$", RetrainView.as_view(), name="model-retrain"),
]
