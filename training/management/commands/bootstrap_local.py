import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from core.tokens import token_create, token_usable
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
        token = self._token(user)
        gateway.experiment_id()
        port = os.environ.get("PORT", "8000")
        password = password_file.read_text().strip()
        self.stdout.write(
            f"Admin:     http://127.0.0.1:{port}/admin/  (user {username!r}, password {password!r})\n"
            f"MLflow UI: {settings.MLFLOW_UI_URL}\n"
            f"API token: {token}\n"
            f"  export TOKEN={token}"
        )

    def _token(self, user) -> str:
        """The admin's token from the last start while it works, so ``make run`` prints the same one each time.

        Only its digest is in the database; the token itself is kept beside the admin's password (mode 600), in
        the embedded mode's own data directory.
        """
        token_file = settings.MDS_DATA_DIR / "api-token.txt"
        if token_file.exists() and token_usable(user=user, token=token_file.read_text().strip()):
            return token_file.read_text().strip()
        _, token = token_create(user=user)
        token_file.unlink(missing_ok=True)
        with os.fdopen(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(token + "\n")
        return token
