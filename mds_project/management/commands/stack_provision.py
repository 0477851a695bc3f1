"""Provision the local stack that ``scripts/stack.sh`` supervises, in two steps around its services' start.

    manage.py stack_provision prepare   before any service: data directories, secrets.env, the services' database
                                        role and its two databases, the S3 server's identities, MLflow's basic-auth
                                        configuration
    manage.py stack_provision finish    once S3 runs and Django's database is migrated: the Redis database,
                                        the S3 buckets, the API token, stack.env for clients and tests

The stack's coordinates come from the environment ``scripts/stack.sh`` exports (``STACK_*``, ``CELERY_BROKER_URL``,
``MLFLOW_TRACKING_URI``, ``MDS_S3_ENDPOINT_URL``); the keys come from ``secrets.env``, which this command writes.
Three S3 identities: the admin (provisioning, the integration suite's own checks), the app (web, inference,
worker: the datasets bucket only) and MLflow's server (the artifacts bucket only). With ``STACK_FRESH=1`` it first
removes what an earlier stack left: S3 objects, data and Redis files, both databases, the Redis database.
``prepare`` runs before Django's database exists: it reaches PostgreSQL through psycopg and never opens Django's
own connection.
"""

import json
import os
import secrets
import shlex
import shutil
import time
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import psycopg
import redis
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql

from mds_project.management.stack_s3 import minio_users, seaweedfs_identities

# PostgreSQL is the machine's, on loopback; the stack's own servers listen on STACK_HOST (127.0.0.1 by default).
PG_HOST = "127.0.0.1"
# Names of an earlier stack's secrets, kept with their values: its S3 data was written with the admin keys, and
# MLflow made its admin account with that password.
RENAMED_SECRETS = {
    "AWS_ACCESS_KEY_ID": "STACK_S3_ADMIN_KEY",
    "AWS_SECRET_ACCESS_KEY": "STACK_S3_ADMIN_SECRET",
    "MLFLOW_TRACKING_PASSWORD": "STACK_MLFLOW_ADMIN_PASSWORD",
}


def _env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise CommandError(f"{name} is not set: run this through scripts/stack.sh") from None


def _write_private(path: Path, values: dict[str, str]) -> None:
    """Write ``NAME=value`` lines readable by the owner only, replacing ``path`` in one step."""
    _write_private_text(path, "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items()))


def _write_private_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    partial.replace(path)


class Command(BaseCommand):
    help = "Provision the local stack: 'prepare' before its services start, 'finish' once S3 and the database are up."
    # System checks may query a database that 'prepare' has yet to create.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("step", choices=["prepare", "finish"])

    def handle(self, *args, step: str, **options):
        self.stack_dir = Path(_env("STACK_DIR"))
        self.fresh = os.environ.get("STACK_FRESH") == "1"
        if step == "prepare":
            self._directories()
            self._secrets()
            self._databases()
            self._s3_identities()
            self._mlflow_auth()
        else:
            self._redis()
            self._buckets()
            # The services' MLflow user and the people's read-only one, made by the admin (MLFLOW_AUTH_ADMIN_PASSWORD
            # and MLFLOW_VIEWER_PASSWORD, given to this step only).
            call_command("mlflow_app_user", stdout=self.stdout)
            if os.environ.get("STACK_S3_SERVER") == "minio":
                minio_users(
                    self._secret_values(),
                    endpoint=_env("MDS_S3_ENDPOINT_URL"),
                    datasets=_env("STACK_DATASETS_BUCKET"),
                    artifacts=_env("STACK_ARTIFACTS_BUCKET"),
                )
            self._stack_env(self._token())

    def _log(self, message: str) -> None:
        self.stdout.write(f"[stack] {message}")

    def _directories(self) -> None:
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        self.stack_dir.chmod(0o700)
        for name in ("s3", "data", "redis"):
            path = self.stack_dir / name
            if self.fresh and path.exists():
                # Objects and databases go together: an MLflow database whose artifacts are gone is worse than none.
                self._log(f"removing {path} (STACK_FRESH=1)")
                shutil.rmtree(path)
            path.mkdir(exist_ok=True)

    def _secrets(self) -> None:
        """Made once per stack directory and kept out of the repository (``var/`` is ignored); a secret added
        since the directory was made is added to it."""
        path = self.stack_dir / "secrets.env"
        wanted = {
            # 67 characters: the production settings refuse a key Django's deployment check calls weak.
            "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
            **{
                f"STACK_S3_{who}_{part}": make
                for who in ("ADMIN", "APP", "MLFLOW")
                for part, make in (
                    ("KEY", lambda who=who: f"mds-{who.lower()}-{secrets.token_hex(6)}"),
                    ("SECRET", lambda: secrets.token_urlsafe(32)),
                )
            },
            "STACK_MLFLOW_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(32),
            "STACK_MLFLOW_APP_PASSWORD": lambda: secrets.token_urlsafe(32),
            # The MLflow UI's read-only login for people.
            "STACK_MLFLOW_VIEWER_PASSWORD": lambda: secrets.token_urlsafe(32),
            # MLflow's basic auth refuses to start without a key of its own for its CSRF protection.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": lambda: secrets.token_urlsafe(32),
        }
        found = self._secret_values()
        values = {
            (RENAMED_SECRETS[name] if RENAMED_SECRETS.get(name) not in (None, *found) else name): value
            for name, value in found.items()
        }
        # A key made before the production settings refused short ones (43 characters) is made again: signed-in
        # admin sessions end, nothing else depends on it.
        if len(values.get("DJANGO_SECRET_KEY", "")) < 50:
            values.pop("DJANGO_SECRET_KEY", None)
        missing = [name for name in wanted if name not in values]
        if not missing and values == found:
            return
        if missing:
            self._log(f"generating {', '.join(missing)} in {path}")
        _write_private(path, {**values, **{name: wanted[name]() for name in missing}})

    def _secret_values(self) -> dict[str, str]:
        path = self.stack_dir / "secrets.env"
        if not path.exists():
            return {}
        lines = path.read_text().splitlines()
        return {name: shlex.split(value)[0] for name, _, value in (line.partition("=") for line in lines) if value}

    def _s3_identities(self) -> None:
        """SeaweedFS reads its identities from this file (``-s3.config``); MinIO gets its users in 'finish'."""
        buckets = {"datasets": _env("STACK_DATASETS_BUCKET"), "artifacts": _env("STACK_ARTIFACTS_BUCKET")}
        config = seaweedfs_identities(self._secret_values(), **buckets)
        _write_private_text(self.stack_dir / "s3-identities.json", json.dumps(config, indent=2))

    def _databases(self) -> None:
        server: dict[str, Any] = {
            "host": PG_HOST,
            "port": _env("STACK_PG_PORT"),
            "user": _env("STACK_PG_USER"),
            "dbname": "postgres",
        }
        role = _env("STACK_DB_ROLE")
        with psycopg.connect(**server, autocommit=True) as connection:
            # The services' role: logs in (local trust, as the stack's superuser does) and owns the two databases.
            if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                self._log(f"creating role {role}")
                connection.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION").format(
                        sql.Identifier(role)
                    )
                )
            for name in (_env("STACK_DJANGO_DB"), _env("STACK_MLFLOW_DB")):
                if self.fresh:
                    self._log(f"dropping database {name} (STACK_FRESH=1)")
                    connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                found = connection.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]
                ).fetchone()
                if found is None:
                    self._log(f"creating database {name} (owner {role})")
                    connection.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role))
                    )
                elif found[0] != role:
                    self._database_hand_over(server, name, role)

    def _database_hand_over(self, server: dict, name: str, role: str) -> None:
        """A database an earlier stack made as the superuser: it and what its public schema holds go to ``role``."""
        self._log(f"handing database {name} to role {role}")
        with psycopg.connect(**server, autocommit=True) as connection:
            connection.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(role))
            )
        with psycopg.connect(**{**server, "dbname": name}, autocommit=True) as connection:
            objects = connection.execute(
                """
                SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                      WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.oid::regclass::text
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                   AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
                   -- a sequence that belongs to a column moves with its table
                   AND NOT (c.relkind = 'S' AND EXISTS (
                       SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
                UNION ALL
                SELECT 'TYPE', t.oid::regtype::text
                  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                 WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
                   AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
                """,
                {"role": role},
            ).fetchall()
            for kind, qualified in objects:
                # `qualified` is PostgreSQL's own quoted name of the object (regclass/regtype text).
                connection.execute(
                    sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), sql.SQL(qualified), sql.Identifier(role))
                )

    def _mlflow_auth(self) -> None:
        """The basic auth's configuration: its users and permissions in a SQLite file beside the stack's data."""
        path = Path(_env("MLFLOW_AUTH_CONFIG_PATH"))
        path.write_text(
            "[mlflow]\n"
            # Signed-in accounts read everything; only the services' user changes what it made (deploy/mlflow/).
            "default_permission = READ\n"
            f"database_uri = sqlite:///{self.stack_dir / 'data' / 'mlflow-auth.db'}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "grant_default_workspace_access = false\n"
        )

    def _redis(self) -> None:
        """Empty the stack's own Redis database; a shared Redis's other databases are never touched."""
        if self.fresh:
            url = _env("CELERY_BROKER_URL")
            self._log(f"emptying redis database {url.rsplit('/', 1)[-1]} (STACK_FRESH=1)")
            redis.Redis.from_url(url).flushdb()

    def _buckets(self) -> None:
        """Both buckets must exist before anything writes (MinIO makes none by itself; SeaweedFS is idempotent)."""
        keys = self._secret_values()
        s3 = boto3.client(
            "s3",
            endpoint_url=_env("MDS_S3_ENDPOINT_URL"),
            aws_access_key_id=keys["STACK_S3_ADMIN_KEY"],
            aws_secret_access_key=keys["STACK_S3_ADMIN_SECRET"],
            region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            config=Config(
                s3={"addressing_style": "path"},
                # Some non-AWS S3 servers reject boto3's default request checksums.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1},
            ),
        )
        # The S3 port answers a moment before the server accepts requests.
        deadline = time.monotonic() + int(os.environ.get("STACK_WAIT_SECONDS", "90"))
        while True:
            try:
                existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
                for bucket in (_env("STACK_ARTIFACTS_BUCKET"), _env("STACK_DATASETS_BUCKET")):
                    if bucket not in existing:
                        s3.create_bucket(Bucket=bucket)
                        self._log(f"created bucket {bucket}")
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    raise CommandError(f"S3 not ready: {exc}") from exc
                time.sleep(0.5)

    def _token(self) -> str:
        out = StringIO()
        # The operator's token: every API, promotion included.
        call_command("issue_token", os.environ.get("STACK_API_USER", "stack"), "--role", "maintainer", stdout=out)
        return out.getvalue().strip()

    def _stack_env(self, token: str) -> None:
        """What a client or the integration suite needs: URLs, the API token, S3 keys."""
        path = self.stack_dir / "stack.env"
        keys = self._secret_values()
        host = os.environ.get("STACK_HOST", "127.0.0.1")
        values = {
            "MDS_STACK": "1",
            "MDS_STACK_DIR": str(self.stack_dir),
            "MDS_STACK_WEB_URL": f"http://{host}:{_env('STACK_WEB_PORT')}",
            "MDS_STACK_INFERENCE_URL": f"http://{host}:{_env('STACK_INFERENCE_PORT')}",
            "MDS_STACK_TOKEN": token,
            "MDS_STACK_MLFLOW_URI": _env("MLFLOW_TRACKING_URI"),
            # MLflow clients (the integration suite's too) sign in as the services' user; the admin's account is
            # for the MLflow UI's user management and the suite's checks of it.
            "MLFLOW_TRACKING_USERNAME": _env("MLFLOW_TRACKING_USERNAME"),
            "MLFLOW_TRACKING_PASSWORD": _env("MLFLOW_TRACKING_PASSWORD"),
            "MDS_STACK_MLFLOW_ADMIN_USERNAME": _env("MLFLOW_AUTH_ADMIN_USERNAME"),
            "MDS_STACK_MLFLOW_ADMIN_PASSWORD": keys["STACK_MLFLOW_ADMIN_PASSWORD"],
            # The MLflow UI's login for people: reads everything, changes nothing.
            "MDS_STACK_MLFLOW_VIEWER_USERNAME": _env("MLFLOW_VIEWER_USER"),
            "MDS_STACK_MLFLOW_VIEWER_PASSWORD": keys["STACK_MLFLOW_VIEWER_PASSWORD"],
            "MDS_STACK_S3_ENDPOINT": _env("MDS_S3_ENDPOINT_URL"),
            # The admin keys (every bucket), and the two limited identities the services use.
            "MDS_STACK_S3_ACCESS_KEY": keys["STACK_S3_ADMIN_KEY"],
            "MDS_STACK_S3_SECRET_KEY": keys["STACK_S3_ADMIN_SECRET"],
            "MDS_STACK_S3_APP_ACCESS_KEY": keys["STACK_S3_APP_KEY"],
            "MDS_STACK_S3_APP_SECRET_KEY": keys["STACK_S3_APP_SECRET"],
            "MDS_STACK_S3_MLFLOW_ACCESS_KEY": keys["STACK_S3_MLFLOW_KEY"],
            "MDS_STACK_S3_MLFLOW_SECRET_KEY": keys["STACK_S3_MLFLOW_SECRET"],
            "MDS_STACK_DATASETS_BUCKET": _env("STACK_DATASETS_BUCKET"),
            "MDS_STACK_ARTIFACTS_BUCKET": _env("STACK_ARTIFACTS_BUCKET"),
            "MDS_STACK_VISIBILITY_TIMEOUT": _env("CELERY_VISIBILITY_TIMEOUT"),
            # The size batch inputs are split at: the suite sizes its multi-chunk files from it.
            "MDS_STACK_BATCH_CHUNK_BYTES": str(settings.MDS_BATCH_CHUNK_BYTES),
            # The services' own database: the fault suite cuts their connections to it.
            "MDS_STACK_DATABASE_URL": _env("DATABASE_URL"),
        }
        _write_private(path, values)
