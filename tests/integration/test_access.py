"""Who holds which key on the running stack: the app services reach the datasets bucket only, the MLflow server
the artifacts bucket only, and the services sign in to MLflow as a plain user; the admin keys and account stay with
provisioning."""

import os
import subprocess
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from tests.factories import weather_csv

from .support import ROOT, job_wait, s3_client, service_environ, train

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


def mlflow_as(stack, credentials: tuple[str, str], method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{stack.mlflow_uri}/api/2.0/mlflow/{path}", auth=credentials, timeout=30, **kwargs
    )


@pytest.fixture(scope="module")
def mlflow_app():
    return os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


@pytest.fixture(scope="module")
def mlflow_admin():
    return os.environ["MDS_STACK_MLFLOW_ADMIN_USERNAME"], os.environ["MDS_STACK_MLFLOW_ADMIN_PASSWORD"]


def test_the_services_mlflow_account_is_no_admin(stack, mlflow_app, mlflow_admin):
    # given: the services sign in with the account stack.env names
    for service in ("web", "inference", "worker"):
        environ = service_environ(stack, service)
        assert (environ["MLFLOW_TRACKING_USERNAME"], environ["MLFLOW_TRACKING_PASSWORD"]) == mlflow_app
        assert mlflow_admin[1] not in environ.values()
    newcomer = {"username": f"probe-{uuid.uuid4().hex[:8]}", "password": uuid.uuid4().hex}

    # when: it tries what only an admin may
    create = mlflow_as(stack, mlflow_app, "POST", "users/create", json=newcomer)
    takeover = mlflow_as(
        stack, mlflow_app, "PATCH", "users/update-password", json={"username": mlflow_admin[0], "password": "x" * 12}
    )
    promote = mlflow_as(
        stack, mlflow_app, "PATCH", "users/update-admin", json={"username": mlflow_app[0], "is_admin": True}
    )

    # then: refused, and MLflow's own record says so; the admin's password still works
    assert (create.status_code, takeover.status_code, promote.status_code) == (403, 403, 403)
    user = mlflow_as(stack, mlflow_admin, "GET", "users/get", params={"username": mlflow_app[0]})
    assert user.status_code == 200 and user.json()["user"]["is_admin"] is False
    assert (
        mlflow_as(stack, mlflow_admin, "GET", "users/get", params={"username": newcomer["username"]}).status_code
        == 404
    )


def test_the_services_mlflow_account_manages_what_the_services_use(stack, http, mlflow_app, unique_model_name):
    # given: a version the stack trained
    accepted = train(
        http,
        stack,
        weather_csv(days=40, seed=7),
        "access.csv",
        model_name=unique_model_name,
        n_estimators=5,
        max_depth=4,
    )
    assert job_wait(http, stack, accepted["id"])["status"] == "success"

    # when: the services' account reads and changes the model it registered
    found = mlflow_as(stack, mlflow_app, "GET", "registered-models/get", params={"name": unique_model_name})
    tagged = mlflow_as(
        stack,
        mlflow_app,
        "POST",
        "registered-models/set-tag",
        json={"name": unique_model_name, "key": "access-probe", "value": "1"},
    )

    # then
    assert found.status_code == 200 and tagged.status_code == 200


def test_provisioning_the_mlflow_account_again_changes_nothing(stack, mlflow_admin, mlflow_app):
    # when: the provisioning step runs again, as the admin
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "manage", "mlflow_app_user"],
        env={
            **os.environ,
            "STACK_DIR": str(stack.directory),
            "MLFLOW_AUTH_ADMIN_PASSWORD": mlflow_admin[1],
            "MLFLOW_VIEWER_PASSWORD": os.environ["MDS_STACK_MLFLOW_VIEWER_PASSWORD"],
        },
        timeout=120,
        capture_output=True,
        text=True,
    )

    # then: both accounts exist, keep their passwords, and nothing needed granting
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2].endswith(f"'{mlflow_app[0]}' exists, password set"), result.stdout
    assert lines[-1].endswith("(read-only) exists, password set"), result.stdout
    assert mlflow_as(stack, mlflow_app, "GET", "experiments/search", params={"max_results": 1}).status_code == 200


def test_the_mlflow_login_for_people_reads_everything_and_changes_nothing(
    stack, http, mlflow_app, mlflow_admin, unique_model_name
):
    # given: a version the stack trained, and the viewer account stack.env names
    viewer = os.environ["MDS_STACK_MLFLOW_VIEWER_USERNAME"], os.environ["MDS_STACK_MLFLOW_VIEWER_PASSWORD"]
    accepted = train(
        http,
        stack,
        weather_csv(days=40, seed=8),
        "viewer.csv",
        model_name=unique_model_name,
        n_estimators=5,
        max_depth=4,
    )
    assert job_wait(http, stack, accepted["id"])["status"] == "success"
    version = {"name": unique_model_name, "version": "1"}

    # when: it reads, then tries what would change what is served
    found = mlflow_as(stack, viewer, "GET", "registered-models/get", params={"name": unique_model_name})
    alias = mlflow_as(stack, viewer, "POST", "registered-models/alias", json={**version, "alias": "champion"})
    tagged = mlflow_as(stack, viewer, "POST", "model-versions/set-tag", json={**version, "key": "k", "value": "v"})
    removed = mlflow_as(stack, viewer, "DELETE", "registered-models/delete", json={"name": unique_model_name})
    promote = mlflow_as(stack, viewer, "PATCH", "users/update-admin", json={"username": viewer[0], "is_admin": True})

    # then: read, refused, and MLflow's record says it is no admin
    assert found.status_code == 200
    assert (alias.status_code, tagged.status_code, removed.status_code, promote.status_code) == (403, 403, 403, 403)
    user = mlflow_as(stack, mlflow_admin, "GET", "users/get", params={"username": viewer[0]})
    assert user.status_code == 200 and user.json()["user"]["is_admin"] is False
    assert mlflow_as(stack, mlflow_app, "GET", "registered-models/get", params={"name": unique_model_name}).ok
