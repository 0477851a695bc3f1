"""Who holds which key on the running stack: the app services reach the datasets bucket only, the MLflow server
the artifacts bucket only; the admin keys stay with provisioning."""

import os
import uuid

import pytest
from botocore.exceptions import ClientError

from .support import s3_client, service_environ

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app_s3(stack):
    return s3_client(stack, os.environ["MDS_STACK_S3_APP_ACCESS_KEY"], os.environ["MDS_STACK_S3_APP_SECRET_KEY"])


@pytest.fixture(scope="module")
def mlflow_s3(stack):
    return s3_client(stack, os.environ["MDS_STACK_S3_MLFLOW_ACCESS_KEY"], os.environ["MDS_STACK_S3_MLFLOW_SECRET_KEY"])


@pytest.fixture
def probes(stack, s3):
    """One object the admin puts in each bucket, removed afterwards."""
    key = f"access-probe/{uuid.uuid4().hex}"
    buckets = (stack.datasets_bucket, stack.artifacts_bucket)
    for bucket in buckets:
        s3.put_object(Bucket=bucket, Key=key, Body=b"probe")
    yield key
    for bucket in buckets:
        s3.delete_object(Bucket=bucket, Key=key)


def denied(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def own_bucket_works(client, bucket: str, probe: str) -> None:
    key = f"access-probe/{uuid.uuid4().hex}"
    client.put_object(Bucket=bucket, Key=key, Body=b"written")
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"written"
    assert client.get_object(Bucket=bucket, Key=probe)["Body"].read() == b"probe"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="access-probe/")["Contents"]
    assert {key, probe} <= {entry["Key"] for entry in listed}
    client.delete_object(Bucket=bucket, Key=key)


def other_bucket_is_denied(client, bucket: str, probe: str) -> None:
    assert denied(lambda: client.get_object(Bucket=bucket, Key=probe)) == "AccessDenied"
    assert denied(lambda: client.put_object(Bucket=bucket, Key=f"access-probe/{uuid.uuid4().hex}", Body=b"x")) == (
        "AccessDenied"
    )
    assert denied(lambda: client.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    assert denied(lambda: client.delete_object(Bucket=bucket, Key=probe)) == "AccessDenied"
    assert denied(lambda: client.create_bucket(Bucket=f"probe-{uuid.uuid4().hex[:8]}")) == "AccessDenied"


def test_the_app_key_uses_the_datasets_bucket_and_cannot_touch_the_artifacts(stack, s3, app_s3, probes):
    # when / then: datasets in and out; the artifacts bucket refused, its object still there
    own_bucket_works(app_s3, stack.datasets_bucket, probes)
    other_bucket_is_denied(app_s3, stack.artifacts_bucket, probes)
    assert s3.get_object(Bucket=stack.artifacts_bucket, Key=probes)["Body"].read() == b"probe"


def test_the_mlflow_servers_key_uses_the_artifacts_bucket_and_cannot_touch_the_datasets(stack, s3, mlflow_s3, probes):
    own_bucket_works(mlflow_s3, stack.artifacts_bucket, probes)
    other_bucket_is_denied(mlflow_s3, stack.datasets_bucket, probes)
    assert s3.get_object(Bucket=stack.datasets_bucket, Key=probes)["Body"].read() == b"probe"


@pytest.mark.parametrize("service", ["web", "inference", "worker", "beat", "mlflow", "s3"])
def test_each_service_runs_with_its_own_s3_key_and_never_the_admins(stack, service):
    # when
    environ = service_environ(stack, service)

    # then: the app services hold the app key, MLflow its own, the S3 server none (its identities are a file)
    expected = {
        "mlflow": os.environ["MDS_STACK_S3_MLFLOW_ACCESS_KEY"],
        "s3": "",
    }.get(service, os.environ["MDS_STACK_S3_APP_ACCESS_KEY"])
    assert environ.get("AWS_ACCESS_KEY_ID", "") == expected
    assert stack.s3_secret_key not in environ.values()
    assert stack.s3_access_key not in environ.values()
