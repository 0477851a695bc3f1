"""Serving's monitoring routes. The ``models/...`` ones sit beside the registry mirror's version pages (same
prefix, same optional trailing slash) and are included before them."""

from django.urls import path, re_path

from .monitoring_apis import FeedbackView, VersionDriftView, VersionPerformanceView

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
]
