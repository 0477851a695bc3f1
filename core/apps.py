from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .events import event_emitted
        from .webhooks.sending import embedded_sweeper_connect
        from .webhooks.services import event_emitted_receiver

        # Every emitted event becomes its deliveries, in the emitter's transaction (the outbox).
        event_emitted.connect(event_emitted_receiver, dispatch_uid="webhooks-outbox")
        # Embedded mode: the web process sends its own webhooks, and sweeps for due ones from its first request on.
        embedded_sweeper_connect()
