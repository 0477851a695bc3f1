"""``manage.py mlflow_app_user``: the services' own MLflow account and the people's read-only one, made (or their
passwords reset) by the admin.

Run once at provisioning, before the services start, where MLflow runs behind its basic auth. It reads the
accounts from the environment, never the command line: ``MLFLOW_AUTH_ADMIN_USERNAME``/``_PASSWORD`` (the admin,
as the MLflow server reads them), ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` (the services' user) and, when
``MLFLOW_VIEWER_USER`` is set, ``MLFLOW_VIEWER_USER``/``_PASSWORD`` (the MLflow UI's login for people: READ only).
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from registry_mirror.gateway import app_user_provision, viewer_user_provision

NAMES = (
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


class Command(BaseCommand):
    help = "Make the services' MLflow user and the read-only viewer (no admins) as the admin; idempotent."
    # Runs before Django's database may exist: it talks to MLflow only.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=90.0, help="Seconds to wait for the MLflow server.")

    def handle(self, *args, wait: float, **options):
        viewer_wanted = bool(os.environ.get("MLFLOW_VIEWER_USER"))
        names = (*NAMES, "MLFLOW_VIEWER_PASSWORD") if viewer_wanted else NAMES
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise CommandError(f"{', '.join(missing)} not set")
        admin = (os.environ["MLFLOW_AUTH_ADMIN_USERNAME"], os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
        app = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
        # Checked before anything is made: people must never get the admin's or the services' account.
        if viewer_wanted and os.environ["MLFLOW_VIEWER_USER"] in (admin[0], app[0]):
            raise CommandError("MLFLOW_VIEWER_USER must be an account of its own, neither the admin nor the services'")
        try:
            result = app_user_provision(
                admin=admin, app=app, experiment_name=settings.MLFLOW_EXPERIMENT_NAME, wait_seconds=wait
            )
        except ApplicationError as exc:
            raise CommandError(f"MLflow user {app[0]!r} not provisioned: {exc.message}") from exc
        done = "created" if result.created else "exists, password set"
        granted = f"; MANAGE granted on {', '.join(result.granted)}" if result.granted else ""
        self.stdout.write(f"MLflow user {app[0]!r} {done}{granted}")
        if not viewer_wanted:
            return
        viewer = (os.environ["MLFLOW_VIEWER_USER"], os.environ["MLFLOW_VIEWER_PASSWORD"])
        try:
            result = viewer_user_provision(
                admin=admin,
                viewer=viewer,
                app_username=app[0],
                experiment_name=settings.MLFLOW_EXPERIMENT_NAME,
                wait_seconds=wait,
            )
        except ApplicationError as exc:
            raise CommandError(f"MLflow viewer {viewer[0]!r} not provisioned: {exc.message}") from exc
        done = "created" if result.created else "exists, password set"
        lowered = f"; set to READ on {', '.join(result.granted)}" if result.granted else ""
        self.stdout.write(f"MLflow viewer {viewer[0]!r} (read-only) {done}{lowered}")
