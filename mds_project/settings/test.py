"""Test settings: the embedded defaults in a throwaway data directory, PostgreSQL when DATABASE_URL is set."""

import atexit
import os
import shutil
import tempfile

# Never the developer's data directory (`make` exports var/): a store of the test run's own, removed at exit.
# Child processes inherit the variable and share the directory without owning it.
if "MDS_TEST_DATA_DIR" not in os.environ:
    os.environ["MDS_TEST_DATA_DIR"] = tempfile.mkdtemp(prefix="mds-test-")
    atexit.register(shutil.rmtree, os.environ["MDS_TEST_DATA_DIR"], ignore_errors=True)
os.environ["MDS_DATA_DIR"] = os.environ["MDS_TEST_DATA_DIR"]

from .base import *  # noqa: E402,F403

# Tests run tasks in-process unless a test starts a real worker.
CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# WhiteNoise warns on every request when the static directory is missing; tests never collect static files.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
