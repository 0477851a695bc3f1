"""Test settings: the embedded defaults in a throwaway data directory, PostgreSQL when DATABASE_URL is set."""

import os
import tempfile

os.environ.setdefault("MDS_DATA_DIR", tempfile.mkdtemp(prefix="mds-test-"))

from .base import *  # noqa: E402,F403

# Tests run tasks in-process unless a test starts a real worker.
CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# WhiteNoise warns on every request when the static directory is missing; tests never collect static files.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
