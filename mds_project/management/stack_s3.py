"""The local stack's S3 identities: an admin, the app (the datasets bucket only), MLflow's server (the artifacts
bucket only), for either server ``scripts/stack.sh`` runs.

``keys`` holds the stack's secrets: ``STACK_S3_<WHO>_KEY`` and ``STACK_S3_<WHO>_SECRET`` for ADMIN, APP, MLFLOW.
"""

import json
import os
import shutil
import subprocess
import tempfile

from django.core.management.base import CommandError

# What the services do on their own bucket: objects in and out (multipart too), listing, tags.
BUCKET_ACTIONS = ("Read", "Write", "List", "Tagging")


def seaweedfs_identities(keys: dict[str, str], *, datasets: str, artifacts: str) -> dict:
    """SeaweedFS's ``-s3.config``: a key it does not list, or an action on a bucket not named, gets 403."""

    def identity(name: str, who: str, actions: list[str]) -> dict:
        credentials = [{"accessKey": keys[f"STACK_S3_{who}_KEY"], "secretKey": keys[f"STACK_S3_{who}_SECRET"]}]
        return {"name": name, "credentials": credentials, "actions": actions}

    return {
        "identities": [
            identity("mds-admin", "ADMIN", ["Admin", *BUCKET_ACTIONS]),
            identity("mds-app", "APP", [f"{action}:{datasets}" for action in BUCKET_ACTIONS]),
            identity("mds-mlflow", "MLFLOW", [f"{action}:{artifacts}" for action in BUCKET_ACTIONS]),
        ]
    }


def minio_bucket_policy(bucket: str) -> dict:
    """The same rights as a SeaweedFS identity limited to ``bucket``, as a MinIO (IAM) policy."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                    "s3:GetObjectTagging",
                    "s3:PutObjectTagging",
                ],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


def minio_users(keys: dict[str, str], *, endpoint: str, datasets: str, artifacts: str) -> None:
    """MinIO keeps its users itself (the admin keys are its root user): the app's and MLflow's, each with a policy
    for its one bucket, made with MinIO's client ``mc``. Running it again changes nothing."""
    if not shutil.which("mc"):
        raise CommandError("MinIO needs its client 'mc' on PATH to make the stack's limited S3 users")
    scheme, address = endpoint.split("://", 1)
    # mc reads an alias from MC_HOST_<alias>: the root keys reach neither its command line nor a config file.
    admin = f"{scheme}://{keys['STACK_S3_ADMIN_KEY']}:{keys['STACK_S3_ADMIN_SECRET']}@{address}"
    env = {**os.environ, "MC_HOST_mds": admin}
    for who, bucket in (("APP", datasets), ("MLFLOW", artifacts)):
        name, key = f"mds-{who.lower()}", keys[f"STACK_S3_{who}_KEY"]
        with tempfile.NamedTemporaryFile("w", suffix=".json") as policy:
            json.dump(minio_bucket_policy(bucket), policy)
            policy.flush()
            _mc(env, "admin", "policy", "create", "mds", name, policy.name)
        _mc(env, "admin", "user", "add", "mds", key, keys[f"STACK_S3_{who}_SECRET"])
        # A second run finds the policy attached, which mc reports as an error: the check is the listing below.
        subprocess.run(["mc", "--quiet", "admin", "policy", "attach", "mds", name, "--user", key], env=env)
        if name not in _mc(env, "admin", "user", "info", "mds", key):
            raise CommandError(f"MinIO user {key} has no policy {name}")


def _mc(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(["mc", "--quiet", *args], env=env, capture_output=True, text=True)
    if result.returncode:
        raise CommandError(f"mc {' '.join(args[:3])} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout
