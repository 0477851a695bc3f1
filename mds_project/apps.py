from django.apps import AppConfig


class MdsProjectConfig(AppConfig):
    name = "mds_project"

    def ready(self) -> None:
        # Batch scoring reads a stored training dataset (`POST /batch?dataset=<id>`) without knowing the training
        # app: the wiring hands it training's lookup.
        from inference.batch.sources import dataset_resolver_register
        from training.selectors import dataset_storage_name

        dataset_resolver_register(dataset_storage_name)
