from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from core.metrics import MetricsView
from core.token_apis import TokenViewSet
from core.webhooks.apis import DeliveryRedeliverView, WebhookViewSet
from inference.apis import PredictionViewSet
from inference.batch.apis import BatchJobViewSet
from inference.mlflow_protocol import InvocationsViewSet, ping, version
from training.apis import TrainingJobViewSet

from .health import live, ready
from .pages import RedocDocs, SwaggerDocs, home

# A dependency that is down answers 503 with Retry-After outside the API too (admin pages, middleware).
handler500 = "core.exception_handler.server_error"

# Serving's routes come first: Django tries the patterns in order for every request (~1 µs each, ~13 µs for
# /predict behind the others), and a 1-row prediction costs ~0.5 ms in all.
serving_router = SimpleRouter(trailing_slash=False)
serving_router.register("predict", PredictionViewSet, basename="prediction")
serving = [
    *serving_router.urls,
    # MLflow's scoring protocol (`mlflow models serve`).
    path("invocations", InvocationsViewSet.as_view({"post": "create"}), name="mlflow-invocations"),
    path("ping", ping, name="mlflow-ping"),
    path("version", version, name="mlflow-version"),
    path("health", live, name="health"),
    path("health/ready", ready, name="health-ready"),
    path("", include("inference.v2.urls")),
]

router = SimpleRouter(trailing_slash=False)
router.register("train", TrainingJobViewSet, basename="training-job")
router.register("tokens", TokenViewSet, basename="token")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("batch", BatchJobViewSet, basename="batch-job")

urlpatterns = [
    *serving,
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SwaggerDocs.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc", RedocDocs.as_view(url_name="schema", template_name="mds/redoc.html"), name="api-redoc"),
    path("webhooks/deliveries/<int:pk>/redeliver", DeliveryRedeliverView.as_view(), name="webhook-redeliver"),
    *router.urls,
    # Before the mirror's routes: /models/<name>/versions/<v>/{performance,drift} are serving's (it owns the log).
    path("", include("inference.urls")),
    path("", include("training.urls")),
    path("", include("registry_mirror.urls")),
]
