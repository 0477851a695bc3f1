"""Reachability checks of the shared infrastructure for ``/health/ready``: database, broker, dataset storage.

Each check raises if its dependency does not answer within ``MDS_READY_TIMEOUT`` seconds and returns a short
detail otherwise. A dependency the configuration does not use (tasks in-process, datasets on local disk) passes.
"""

import threading
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def database_check() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def broker_check() -> str:
    url = settings.CELERY_BROKER_URL
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False) or url.startswith("memory://"):
        return "not used: tasks run in-process"
    timeout = settings.MDS_READY_TIMEOUT
    if url.startswith(("redis://", "rediss://")):
        import redis

        with redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout) as client:
            client.ping()
        return "redis"
    from kombu import Connection

    with Connection(url, connect_timeout=timeout) as broker:
        broker.ensure_connection(max_retries=1)
    return broker.transport_cls


def storage_check() -> str:
    """The datasets bucket answers (S3), or the media directory exists (local files)."""
    bucket = getattr(default_storage, "bucket_name", None)
    if bucket is None:
        return "not used: datasets are local files"
    _s3_client().head_bucket(Bucket=bucket)
    return "s3"


def _s3_client():
    """A client like the storage's own, but with one attempt and short timeouts: a check must answer quickly."""
    from botocore.config import Config

    # django-storages' S3Storage, which ships no annotations.
    storage: Any = default_storage
    key = (storage.endpoint_url, storage.access_key, storage.region_name)
    with _clients_lock:
        if key not in _clients:
            import boto3

            timeout = settings.MDS_READY_TIMEOUT
            config = (storage.client_config or Config()).merge(
                Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
            )
            _clients[key] = boto3.session.Session().client(
                "s3",
                endpoint_url=storage.endpoint_url,
                aws_access_key_id=storage.access_key,
                aws_secret_access_key=storage.secret_key,
                region_name=storage.region_name,
                config=config,
            )
        return _clients[key]
