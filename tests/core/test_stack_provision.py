"""The local stack's secrets and S3 identities, as ``manage.py stack_provision prepare`` writes them."""

import shlex

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.management.commands.stack_provision import Command
from core.management.stack_s3 import seaweedfs_identities


def secrets_of(path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {name: shlex.split(value)[0] for name, _, value in pairs}


@pytest.fixture
def provision(tmp_path):
    command = Command()
    command.stack_dir = tmp_path
    return command


def test_an_earlier_stacks_secrets_keep_their_values_under_the_new_names(provision, tmp_path):
    # given: secrets.env as a stack made before the limited identities wrote it
    path = tmp_path / "secrets.env"
    path.write_text(
        "DJANGO_SECRET_KEY=k\nAWS_ACCESS_KEY_ID=old-key\nAWS_SECRET_ACCESS_KEY=old-secret\n"
        "MLFLOW_TRACKING_PASSWORD=old-admin-password\nMLFLOW_FLASK_SERVER_SECRET_KEY=f\n"
    )

    # when: prepared twice
    provision._secrets()
    first = secrets_of(path)
    provision._secrets()

    # then: S3 data and MLflow's admin account stay reachable; the new identities get secrets of their own
    assert first["STACK_S3_ADMIN_KEY"] == "old-key" and first["STACK_S3_ADMIN_SECRET"] == "old-secret"
    assert first["STACK_MLFLOW_ADMIN_PASSWORD"] == "old-admin-password"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD"}.isdisjoint(first)
    fresh = [first[f"STACK_S3_{who}_{part}"] for who in ("APP", "MLFLOW") for part in ("KEY", "SECRET")]
    fresh.append(first["STACK_MLFLOW_APP_PASSWORD"])
    assert len(set(fresh) | {"old-key", "old-secret", "old-admin-password"}) == len(fresh) + 3
    assert secrets_of(path) == first
    assert path.stat().st_mode & 0o077 == 0


def test_each_limited_identity_names_its_one_bucket():
    # given
    keys = {
        f"STACK_S3_{who}_{part}": f"{who}-{part}" for who in ("ADMIN", "APP", "MLFLOW") for part in ("KEY", "SECRET")
    }

    # when
    identities = {i["name"]: i for i in seaweedfs_identities(keys, datasets="data", artifacts="arts")["identities"]}

    # then
    assert identities["mds-app"]["actions"] == ["Read:data", "Write:data", "List:data", "Tagging:data"]
    assert identities["mds-mlflow"]["actions"] == ["Read:arts", "Write:arts", "List:arts", "Tagging:arts"]
    assert "Admin" in identities["mds-admin"]["actions"]
    assert identities["mds-app"]["credentials"] == [{"accessKey": "APP-KEY", "secretKey": "APP-SECRET"}]


def test_the_mlflow_account_command_names_what_is_missing_and_refuses_the_admin_as_the_services_user(monkeypatch):
    # given
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "boss")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "boss")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")

    # when / then
    with pytest.raises(CommandError, match="MLFLOW_AUTH_ADMIN_PASSWORD not set"):
        call_command("mlflow_app_user", wait=0)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "secret")
    with pytest.raises(CommandError, match="must not be the admin"):
        call_command("mlflow_app_user", wait=0)
