import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from registry_mirror import gateway


class Command(BaseCommand):
    help = "Prepare the embedded mode: a local admin user, its API token and the MLflow experiment."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        password_file = settings.MDS_DATA_DIR / "admin-password.txt"
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None or not password_file.exists():
            password = secrets.token_urlsafe(12)
            user = user or user_model(username=username)
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        token, _ = Token.objects.get_or_create(user=user)
        gateway.experiment_id()
        port = os.environ.get("PORT", "8000")
        password = password_file.read_text().strip()
        self.stdout.write(
            f"Admin:     http://127.0.0.1:{port}/admin/  (user {username!r}, password {password!r})\n"
            f"MLflow UI: {settings.MLFLOW_UI_URL}\n"
            f"API token: {token.key}\n"
            f"  export TOKEN={token.key}"
        )
