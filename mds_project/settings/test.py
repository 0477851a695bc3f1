"""Test settings: the local (embedded) settings in a throwaway data directory, PostgreSQL when DATABASE_URL is set."""

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

from .local import *  # noqa: E402,F403

# As deployed; pytest-django turns DEBUG off in the test process anyway, this covers the processes tests start.
DEBUG = WHITENOISE_AUTOREFRESH = False
# Tests run tasks in-process unless a test starts a real worker, and a training job inside the request that
# commits it (django_capture_on_commit_callbacks runs it); tests of background training turn it on themselves.
CELERY_TASK_ALWAYS_EAGER = True
MDS_EMBEDDED_BACKGROUND_TRAINING = False
# Webhooks are sent inside the request, after its commit (django_capture_on_commit_callbacks runs them).
MDS_WEBHOOK_BACKGROUND = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Logged predictions are written by the test (prediction_log_flush), inside its transaction.
MDS_PREDICTION_LOG_BACKGROUND = False
# And the trials' shadow scorings by the test (trial_shadow_flush).
MDS_TRIAL_SHADOW_BACKGROUND = False
