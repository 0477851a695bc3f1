from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from registry_mirror.services import registry_mirror_sync


class Command(BaseCommand):
    help = (
        "Copy MLflow's model registry into the mirror tables (upsert; versions gone from MLflow are marked deleted)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", dest="model_name", default=None, help="Sync only this registered model.")

    def handle(self, *args, model_name: str | None, **options):
        try:
            result = registry_mirror_sync(model_name=model_name)
        except ApplicationError as exc:
            raise CommandError(f"Registry sync failed, the mirror is unchanged: {exc.message}") from exc
        self.stdout.write(f"Registry mirror synced: {result}")
