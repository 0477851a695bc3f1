from django.apps import AppConfig


class RegistryMirrorConfig(AppConfig):
    name = "registry_mirror"
    verbose_name = "Model registry"
