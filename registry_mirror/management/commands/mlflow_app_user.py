"""``manage.py mlflow_app_user``: the services' own MLflow account, made (or its password reset) by the admin.

Run once at provisioning, before the services start, where MLflow runs behind its basic auth. It reads the
accounts from the environment, never the command line: ``MLFLOW_AUTH_ADMIN_USERNAME``/``_PASSWORD`` (the admin,
as the MLflow server reads them) and ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` (the services' user).
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from registry_mirror.gateway import app_user_provision

NAMES = (
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


class Command(BaseCommand):
    help = "Make the services' MLflow user (not an admin) with the admin's credentials; idempotent."
    # Runs before Django's database may exist: it talks to MLflow only.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=90.0, help="Seconds to wait for the MLflow server.")

    def handle(self, *args, wait: float, **options):
        missing = [name for name in NAMES if not os.environ.get(name)]
        if missing:
            raise CommandError(f"{', '.join(missing)} not set")
        admin = (os.environ["MLFLOW_AUTH_ADMIN_USERNAME"], os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
        app = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
        try:
            result = app_user_provision(
                admin=admin, app=app, experiment_name=settings.MLFLOW_EXPERIMENT_NAME, wait_seconds=wait
            )
        except ApplicationError as exc:
            raise CommandError(f"MLflow user {app[0]!r} not provisioned: {exc.message}") from exc
        done = "created" if result.created else "exists, password set"
        granted = f"; MANAGE granted on {', '.join(result.granted)}" if result.granted else ""
        self.stdout.write(f"MLflow user {app[0]!r} {done}{granted}")
