"""Production settings are secure by default: Django's deployment checklist passes with only the required
variables set, and each protection is turned off only explicitly."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "MDS_", "MLFLOW_"))}
    return {
        **keep,
        "DJANGO_SETTINGS_MODULE": "mds_project.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_ALLOWED_HOSTS": "mds.example.com",
        "MLFLOW_TRACKING_URI": "http://mlflow.internal:5001",
        "MDS_DATA_DIR": str(tmp_path),
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_deployment_checklist_passes_with_the_required_variables_set(tmp_path):
    # when
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")

    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_turning_https_off_for_local_http_is_explicit_and_the_checklist_says_so(tmp_path):
    # given: the switches a plain-HTTP deployment on 127.0.0.1 sets
    env = production_env(
        tmp_path, DJANGO_SECURE_SSL_REDIRECT="false", DJANGO_SECURE_HSTS_SECONDS="0", DJANGO_SECURE_COOKIES="false"
    )

    # when
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    # then
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # HSTS, SSL redirect, secure session and CSRF cookies
    assert all(code in output for code in ("security.W004", "security.W008", "security.W012", "security.W016"))


def test_a_proxy_header_is_read_from_the_environment(tmp_path):
    # given
    env = production_env(tmp_path, DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    code = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER, settings.SECURE_SSL_REDIRECT)"

    # when
    result = manage(env, "shell", "-c", code)

    # then
    assert result.stdout.strip().splitlines()[-1] == "('HTTP_X_FORWARDED_PROTO', 'https') True", result.stderr
