from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"

    def ready(self) -> None:
        # Live performance, drift and trials on a version's and a model's page, without the mirror knowing this app.
        from registry_mirror.panels import model_panels_register, version_panels_register

        from . import mlflow_protocol  # noqa: F401  (registers its system check)
        from .admin import version_monitoring_panels

        version_panels_register(version_monitoring_panels)
        from .trials.admin import model_trial_panels, version_trial_panels

        version_panels_register(version_trial_panels)
        model_panels_register(model_trial_panels)

        # A trial starts (or a stale one stops) when an alias moves: MDS_TRIAL_ON_CHALLENGER.
        from registry_mirror.signals import aliases_moved

        aliases_moved.connect(_aliases_moved, dispatch_uid="inference-trials")

        from core.metrics import collector_register

        from .batch.metrics import BatchJobCollector

        collector_register(BatchJobCollector())

        # Embedded mode: batch jobs an earlier process held are taken up again from the first request on.
        from .batch.embedded import dispatcher_connect

        dispatcher_connect()


def _aliases_moved(*, model_name: str, **kwargs) -> None:
    from .trials.services import trial_on_challenger

    try:
        trial_on_challenger(model_name=model_name)
    except Exception:
        import logging

        logging.getLogger(__name__).exception("Trial check after an alias move of %s failed", model_name)
