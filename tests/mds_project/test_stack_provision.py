"""The local stack's secrets and S3 identities, as ``manage.py stack_provision prepare`` writes them."""

import configparser
import shlex
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mds_project.management.commands.stack_provision import Command
from mds_project.management.stack_s3 import seaweedfs_identities

ROOT = Path(__file__).resolve().parents[2]


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
    # a key the production settings would refuse as weak is made again, long enough
    assert len(first["DJANGO_SECRET_KEY"]) >= 50
    assert first["STACK_MLFLOW_VIEWER_PASSWORD"] not in fresh


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


@pytest.mark.parametrize("viewer", ["boss", "services"])
def test_the_mlflow_account_command_refuses_the_admin_or_the_services_user_as_the_viewer(monkeypatch, viewer):
    # given: an MLflow server that would never answer, so only the check before any call can decide
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "boss")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "secret")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "services")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("MLFLOW_VIEWER_USER", viewer)
    monkeypatch.setenv("MLFLOW_VIEWER_PASSWORD", "view")

    # when / then
    with pytest.raises(CommandError, match="MLFLOW_VIEWER_USER must be an account of its own"):
        call_command("mlflow_app_user", wait=0)


def test_the_mlflow_account_command_wants_the_viewers_password_with_its_name(monkeypatch):
    # given
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "boss")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "secret")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "services")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("MLFLOW_VIEWER_USER", "people")
    monkeypatch.delenv("MLFLOW_VIEWER_PASSWORD", raising=False)

    # when / then
    with pytest.raises(CommandError, match="^MLFLOW_VIEWER_PASSWORD not set$"):
        call_command("mlflow_app_user", wait=0)


def test_the_stacks_mlflow_server_gives_signed_in_accounts_read_only_by_default(provision, tmp_path, monkeypatch):
    # given
    path = tmp_path / "mlflow-auth.ini"
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))

    # when
    provision._mlflow_auth()

    # then: as deploy/mlflow/basic_auth.ini, which the compose file's server reads
    config = configparser.ConfigParser()
    config.read(path)
    shipped = configparser.ConfigParser()
    shipped.read(ROOT / "deploy" / "mlflow" / "basic_auth.ini")
    assert config["mlflow"]["default_permission"] == shipped["mlflow"]["default_permission"] == "READ"
