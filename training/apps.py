from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"

    def ready(self) -> None:
        # The mirror links a version to the job that trained it without knowing this app exists.
        from registry_mirror.origins import origin_links_register

        from .selectors import model_version_origin_links

        origin_links_register(model_version_origin_links)

        # A model's dataset series on its page in the mirror.
        from registry_mirror.panels import model_panels_register

        from .admin import model_series_panels

        model_panels_register(model_series_panels)

        from core.metrics import collector_register

        from .metrics import TrainingJobCollector

        collector_register(TrainingJobCollector())

        # A policy's drift and degradation triggers: serving tells, training retrains.
        from .receivers import receivers_connect

        receivers_connect()

        # Embedded mode: the web process is its own worker, and runs the dispatcher from its first request on.
        from .services import embedded_dispatcher_connect

        embedded_dispatcher_connect()
