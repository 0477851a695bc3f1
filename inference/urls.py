"""Serving's monitoring routes. The ``models/...`` ones sit beside the registry mirror's version pages (same
prefix, same optional trailing slash) and are included before them."""

from django.urls import path, re_path

from .monitoring_apis import FeedbackView, VersionDriftView, VersionPerformanceView
from .trials.apis import TrialDecideView, TrialStopView, TrialView

urlpatterns = [
    path("feedback", FeedbackView.as_view(), name="feedback"),
    re_path(
        r"^models/(?P<name>[^/]+)/versions/(?P<version>[0-9]{1,9})/performance/?$",
        VersionPerformanceView.as_view(),
        name="model-version-performance",
    ),
    re_path(
        r"^models/(?P<name>[^/]+)/versions/(?P<version>[0-9]{1,9})/drift/?$",
        VersionDriftView.as_view(),
        name="model-version-drift",
    ),
    re_path(r"^models/(?P<name>[^/]+)/trial/?$", TrialView.as_view(), name="model-trial"),
    re_path(r"^models/(?P<name>[^/]+)/trial/stop/?$", TrialStopView.as_view(), name="model-trial-stop"),
    re_path(r"^models/(?P<name>[^/]+)/trial/decide/?$", TrialDecideView.as_view(), name="model-trial-decide"),
]
