"""Production: secrets and servers are required, so a misconfigured deployment fails at start-up.

``mds_project.wsgi``, ``asgi``, ``inference_wsgi`` and the Celery app default to these settings.
"""

import os

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

# No development default for these: each one missing (or empty) stops the process, named.
# Without MLFLOW_TRACKING_URI models would go to a local SQLite store inside the container and vanish with it.
_REQUIRED = ("DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOWED_HOSTS", "MLFLOW_TRACKING_URI")
_missing = [name for name in _REQUIRED if not os.environ.get(name, "").strip()]
if _missing:
    raise ImproperlyConfigured(
        f"{', '.join(_missing)} not set: mds_project.settings.production requires "
        f"{'it' if len(_missing) == 1 else 'each of them'} in the environment (see .env.example)."
    )

# Every secret a process may read, alone or inside a URL. A value still holding one of .env.example's placeholders
# ("change-me...") stops the process, named but never shown: a deployment must not run on a password anyone
# can read in the repository.
PLACEHOLDER = "change-me"
_SECRETS = (
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "REDIS_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_VIEWER_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
)
_placeholders = [name for name in _SECRETS if PLACEHOLDER in os.environ.get(name, "").lower()]
if _placeholders:
    raise ImproperlyConfigured(
        f"{', '.join(_placeholders)} still {'holds' if len(_placeholders) == 1 else 'hold'} a placeholder from "
        ".env.example: replace each with a secret of your own."
    )

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# The key signs sessions, password resets and messages: one Django's deployment check would call weak (W009) is
# refused at start-up, not merely reported by `check --deploy`.
if not (
    len(SECRET_KEY) >= SECRET_KEY_MIN_LENGTH
    and len(set(SECRET_KEY)) >= SECRET_KEY_MIN_UNIQUE_CHARACTERS
    and not SECRET_KEY.startswith(SECRET_KEY_INSECURE_PREFIX)
):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY is weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters, "
        f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different, and no {SECRET_KEY_INSECURE_PREFIX!r} prefix "
        '(python -c "import secrets; print(secrets.token_urlsafe(50))").'
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

DATABASES = {"default": env.db("DATABASE_URL")}
# Keep connections open between requests, checked before reuse so a restarted server costs no failed request.
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A server that does not answer (a host gone, a partition) is a 503 within seconds, not a request that hangs.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = False

# collectstatic writes compressed copies with content hashes in their names, so they can be cached forever.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}  # noqa: F405


# --- HTTPS and browser security ------------------------------------------------------------------------------
# Secure by default; each can be turned off explicitly for a deployment served over plain HTTP on a trusted
# network (`make stack` on 127.0.0.1, a compose try-out on localhost), never by forgetting a variable.
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Container and load-balancer health checks call over plain HTTP: they are answered, not redirected.
SECURE_REDIRECT_EXEMPT = [r"^health(/|$)"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a TLS-terminating proxy, the header it sets to say the client used HTTPS, as "HEADER,value"
# (e.g. "HTTP_X_FORWARDED_PROTO,https"). Only set it if the proxy always sets or strips that header.
_proxy_ssl_header = env.list("DJANGO_SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if len(_proxy_ssl_header) == 2 else None
