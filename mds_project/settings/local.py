"""The embedded, single-machine mode (``manage.py`` and ``make run``): works with nothing configured.

SQLite, uploads and the MLflow store live in ``MDS_DATA_DIR`` (default ``var/``), tasks run in-process (training
on a thread of its own, off the request), and static files are served from the apps by WhiteNoise, so neither
``collectstatic`` nor any server is needed.
``DATABASE_URL`` and ``CELERY_BROKER_URL`` still move the database and the tasks onto real servers.
"""

from .base import *  # noqa: F403
from .base import MDS_DATA_DIR, STATIC_ROOT, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# A fixed key is only acceptable here; production.py requires DJANGO_SECRET_KEY.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="mds-insecure-local-only-key")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{MDS_DATA_DIR / 'db.sqlite3'}")}
# Keep connections open between requests, checked before reuse so a restarted server costs no failed request.
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process writes from several threads (requests, training, batch chunks, webhook sends), and two
    # processes may share the file: WAL lets readers go on beside a writer, IMMEDIATE takes the write lock when a
    # transaction begins (a read upgraded to a write mid-transaction fails at once instead of waiting), and a
    # writer waits up to 20 s for another to finish.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#database-is-locked-errors
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )

# No broker configured: run tasks in-process (eager) so the embedded mode needs no server.
CELERY_TASK_ALWAYS_EAGER = not env.str("CELERY_BROKER_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "memory://"
# In-process training runs off the request thread: `POST /train` answers 202 at once and clients follow the job.
MDS_EMBEDDED_BACKGROUND_TRAINING = env.bool("MDS_EMBEDDED_BACKGROUND_TRAINING", default=True)
# Webhooks are sent by a thread of the web process, after the commit, off the request.
MDS_WEBHOOK_BACKGROUND = env.bool("MDS_WEBHOOK_BACKGROUND", default=True)
# On a developer's machine the receiver is usually on it too.
MDS_WEBHOOK_ALLOW_PRIVATE = env.bool("MDS_WEBHOOK_ALLOW_PRIVATE", default=True)

# WhiteNoise serves static files straight from the apps (also under gunicorn and with DEBUG off), rescanning
# them on every request while debugging. https://whitenoise.readthedocs.io/en/stable/django.html
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# A fresh clone has no data directory: SQLite cannot create its file without one, and WhiteNoise warns on every
# start about a missing STATIC_ROOT. The MLflow store makes its own directory (registry_mirror.gateway).
MDS_DATA_DIR.mkdir(parents=True, exist_ok=True)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
