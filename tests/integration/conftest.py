"""The real stack, reached as a client would: HTTP to web and inference, S3 and the MLflow server directly.

`make stack` (or `.ci/run`) starts the stack and writes its coordinates to ``var/stack/stack.env``; export them
(``set -a; . var/stack/stack.env; set +a``) and `make test` runs this suite too. Without them the suite is
skipped on a developer's machine but fails in CI (``CI`` set), where a missing stack is a broken build.
"""

import os
import uuid

import pytest
import requests

from .support import Stack, s3_client, stack_from_env


@pytest.fixture(scope="session")
def stack() -> Stack:
    if os.environ.get("MDS_STACK") != "1":
        reason = "the real stack is not configured: run `make stack` and export var/stack/stack.env"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the integration suite, but {reason}", pytrace=False)
        pytest.skip(reason)
    stack = stack_from_env()
    for url in (f"{stack.web_url}/health", f"{stack.inference_url}/health", f"{stack.mlflow_uri}/health"):
        # A stack that was announced but does not answer is a failure, never a skip.
        assert requests.get(url, timeout=5).status_code == 200, url
    return stack


@pytest.fixture(scope="session")
def http(stack) -> requests.Session:
    session = requests.Session()
    session.headers.update(stack.auth)
    return session


@pytest.fixture(scope="session")
def s3(stack):
    """The admin's S3 client: every bucket."""
    return s3_client(stack, stack.s3_access_key, stack.s3_secret_key)


@pytest.fixture(scope="session")
def mlflow_client(stack):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)


@pytest.fixture
def unique_model_name() -> str:
    return f"it_{uuid.uuid4().hex[:10]}"
