from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"

    def ready(self) -> None:
        # Live performance and drift on a version's page, without the mirror knowing this app exists.
        from registry_mirror.panels import version_panels_register

        from . import mlflow_protocol  # noqa: F401  (registers its system check)
        from .admin import version_monitoring_panels

        version_panels_register(version_monitoring_panels)

        from core.metrics import collector_register

        from .batch.metrics import BatchJobCollector

        collector_register(BatchJobCollector())

        # Embedded mode: batch jobs an earlier process held are taken up again from the first request on.
        from .batch.embedded import dispatcher_connect

        dispatcher_connect()
