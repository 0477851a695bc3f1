"""Settings modules and the entry points that pick them, run as real processes with a clean environment."""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOWED_HOSTS", "MLFLOW_TRACKING_URI")
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "a-test-key-that-is-long-enough-for-the-check-framework-0123456789",
    # Nothing connects at start-up: neither server has to exist.
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/mds_settings",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
    "DJANGO_ALLOWED_HOSTS": "mds.example.com",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999",
}
ENTRY_POINTS = {
    "wsgi": "import mds_project.wsgi",
    "asgi": "import mds_project.asgi",
    "inference_wsgi": "import mds_project.inference_wsgi",
    "celery": "from mds_project.celery import app; app.conf.broker_url",
}


@pytest.fixture
def clean_env(tmp_path):
    """The environment of a fresh shell: no settings module, none of the configuration this test run has."""
    env = {k: v for k, v in os.environ.items() if k not in {*REQUIRED, "DJANGO_SETTINGS_MODULE", "MDS_TEST_DATA_DIR"}}
    env["MDS_DATA_DIR"] = str(tmp_path / "fresh-data-dir")
    return env


def run(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_migrate_works_in_a_fresh_clone_with_the_default_settings(clean_env):
    # given: no data directory yet, and no DJANGO_SETTINGS_MODULE
    data_dir = Path(clean_env["MDS_DATA_DIR"])
    assert not data_dir.exists()

    # when
    result = run(["manage.py", "migrate", "--noinput"], clean_env)

    # then: local settings made the directory and put SQLite in it
    assert result.returncode == 0, result.stderr
    assert (data_dir / "db.sqlite3").is_file()


def test_local_settings_serve_the_admin_and_its_css_without_collectstatic(clean_env):
    # given: runserver on a fresh data directory, nothing collected
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=clean_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/health", timeout=2)
                break
            except requests.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"runserver did not start: {server.communicate()[1]}")
                time.sleep(0.3)

        # when
        login = requests.get(f"{url}/admin/login/", timeout=10)
        css = requests.get(f"{url}/static/admin/css/base.css", timeout=10)
    finally:
        server.terminate()
        server.communicate(timeout=30)

    # then
    assert login.status_code == 200
    assert "/static/admin/css/base.css" in login.text
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert not any((Path(clean_env["MDS_DATA_DIR"]) / "static").iterdir())


@pytest.mark.parametrize("missing", REQUIRED)
def test_production_settings_refuse_to_start_without_a_required_variable(clean_env, missing):
    # given
    env = {**clean_env, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "mds_project.settings.production"}
    del env[missing]

    # when
    result = run(["-c", "import django; django.setup()"], env)

    # then
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured")
    assert missing in message
    assert not any(name in message for name in REQUIRED if name != missing)


def test_production_settings_start_with_every_required_variable(clean_env):
    # given
    env = {**clean_env, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "mds_project.settings.production"}
    show = "import django; django.setup(); from django.conf import settings as s; "
    show += "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.DATABASES['default']['CONN_HEALTH_CHECKS'], "
    show += "s.STORAGES['staticfiles']['BACKEND'])"

    # when
    result = run(["-c", show], env)

    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "True",
        "True",
        "whitenoise.storage.CompressedManifestStaticFilesStorage",
    ]


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_entry_points_default_to_production_settings(clean_env, entry_point):
    # given: no DJANGO_SETTINGS_MODULE and no production configuration
    code = ENTRY_POINTS[entry_point]

    # when
    refused = run(["-c", code], clean_env)
    started = run(
        ["-c", f"{code}; import os; print(os.environ['DJANGO_SETTINGS_MODULE'])"], {**clean_env, **PRODUCTION_ENV}
    )

    # then
    assert refused.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY" in refused.stderr
    assert started.returncode == 0, started.stderr
    assert started.stdout.split()[-1] == "mds_project.settings.production"


def celery_check_ids() -> list[str]:
    return [message.id for message in checks.run_checks(tags=["celery"])]


def test_celery_time_limits_in_order_pass_the_system_check(settings):
    # given
    settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT = 40, 50
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}

    # when / then
    assert celery_check_ids() == []


@pytest.mark.parametrize(
    ("soft", "hard", "visibility", "expected"),
    [
        (50, 50, 60, ["mds.E001"]),
        (40, 60, 60, ["mds.E002"]),
        (70, 65, 60, ["mds.E001", "mds.E002"]),
    ],
)
def test_celery_time_limits_out_of_order_fail_the_system_check(settings, soft, hard, visibility, expected):
    # given
    settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT = soft, hard
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": visibility}

    # when / then
    assert celery_check_ids() == expected


def test_manage_py_check_refuses_a_time_limit_beyond_the_visibility_timeout(settings):
    # given
    settings.CELERY_TASK_TIME_LIMIT = 4000
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

    # when
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")

    # then
    assert "mds.E002" in str(refused.value)
    assert "CELERY_VISIBILITY_TIMEOUT" in str(refused.value)


@pytest.mark.parametrize(("interval", "stale_after", "expected"), [(10, 60, []), (10, 29, ["mds.E003"])])
def test_a_heartbeat_must_go_stale_only_after_several_missed_beats(settings, interval, stale_after, expected):
    # given
    settings.MDS_HEARTBEAT_INTERVAL, settings.MDS_HEARTBEAT_STALE_AFTER = interval, stale_after

    # when / then
    assert celery_check_ids() == expected


def example_values() -> dict[str, str]:
    """``.env.example``'s variables as a person copies them, before filling anything in."""
    pairs = (line.partition("=") for line in (ROOT / ".env.example").read_text().splitlines())
    return {name: value for name, sep, value in pairs if sep and not name.startswith("#")}


def refusal(env: dict) -> str:
    result = run(["-c", "import django; django.setup()"], env)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured")
    return message


def placeholder_cases() -> dict[str, str]:
    """Each secret a process reads, as the compose file builds it from .env.example left as it is."""
    example = example_values()
    redis_url = f"redis://:{example['REDIS_PASSWORD']}@redis:6379/0"
    return {
        "DJANGO_SECRET_KEY": example["DJANGO_SECRET_KEY"],
        "DATABASE_URL": f"postgres://{example['MDS_DB_USER']}:{example['MDS_DB_PASSWORD']}@postgres:5432/mds",
        "CELERY_BROKER_URL": redis_url,
        "CACHE_URL": redis_url,
        "AWS_SECRET_ACCESS_KEY": example["MDS_S3_SECRET_KEY"],
        "MLFLOW_TRACKING_PASSWORD": example["MLFLOW_APP_PASSWORD"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": example["MLFLOW_ADMIN_PASSWORD"],
        "MLFLOW_VIEWER_PASSWORD": example["MLFLOW_VIEWER_PASSWORD"],
    }


@pytest.mark.parametrize(("name", "value"), placeholder_cases().items())
def test_production_settings_refuse_each_placeholder_of_the_example(clean_env, name, value):
    # given: everything filled in but this one secret, left as .env.example has it
    env = {**clean_env, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "mds_project.settings.production", name: value}

    # when
    message = refusal(env)

    # then: the variable is named, its value (a password, even a placeholder one) is not shown
    assert name in message and "placeholder" in message
    assert value not in message
    assert not any(other in message for other in placeholder_cases() if other != name)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("Ab1-x" * 9, id="under-50-characters"),
        pytest.param("abcd" * 20, id="under-5-unique-characters"),
        pytest.param("django-insecure-" + "a-test-key-that-is-long-enough-for-the-check-0123456789", id="insecure"),
    ],
)
def test_production_settings_refuse_a_weak_secret_key(clean_env, key):
    # given
    env = {**clean_env, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "mds_project.settings.production"}
    env["DJANGO_SECRET_KEY"] = key

    # when
    message = refusal(env)

    # then
    assert "DJANGO_SECRET_KEY is weak" in message
    assert key not in message


def filled_example(tmp_path: Path) -> Path:
    """``.env.example`` with every placeholder replaced by a secret of its own, as a deployment fills it in."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#") and "change-me" in value:
            line = f"{name}={secrets.token_urlsafe(50)}"
        lines.append(line)
    path = tmp_path / "filled.env"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="needs docker-compose to render the compose file")
@pytest.mark.parametrize("service", ["web", "inference", "worker", "beat", "migrate", "mlflow-init"])
def test_check_deploy_is_clean_in_each_container_of_a_filled_in_example(clean_env, tmp_path, service):
    # given: the environment the compose file gives this container, from .env.example with its secrets filled in
    rendered = subprocess.run(
        ["docker-compose", "--env-file", str(filled_example(tmp_path)), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    environment = yaml.safe_load(rendered.stdout)["services"][service]["environment"]
    if service == "mlflow-init":
        # its command makes a one-off key before Django starts
        environment["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    env = {**clean_env, **{name: str(value) for name, value in environment.items()}}

    # when
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

    # then: Django's deployment checklist has nothing to say (HSTS, SSL redirect, secure cookies, a strong key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_example_turns_no_https_protection_off():
    # given
    example = example_values()

    # then: the plain-HTTP switches are there to uncomment, never set
    assert not {"DJANGO_SECURE_COOKIES", "DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_HSTS_SECONDS"} & set(example)
    assert example["DJANGO_SECURE_PROXY_SSL_HEADER"] == "HTTP_X_FORWARDED_PROTO,https"
