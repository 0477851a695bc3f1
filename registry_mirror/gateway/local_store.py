"""A local MLflow store (``sqlite:///``) read without importing MLflow, for what serving needs.

Importing MLflow costs a serving process ~2-3 s and ~180 MB before its first prediction; in embedded mode the
registry is a SQLite file and the artifacts a local directory, so a version's number, tags, parity metrics and
artifact location are a few read-only queries away. Anything this reader does not find as it expects (another
schema, a version it does not have, a locked or missing file) returns ``None``, and the caller asks MLflow itself,
which also words the errors (an unknown version is MLflow's ``NotFound``). ``TABLES`` names what it reads of
MLflow's schema; a test holds it to MLflow's own table definitions.
"""

import sqlite3
from contextlib import closing
from typing import Any
from urllib.parse import quote

from django.conf import settings

# The tables and columns of MLflow's SQL store read below.
TABLES = {
    "model_versions": ("name", "version", "run_id", "source", "storage_location", "current_stage"),
    "model_version_tags": ("name", "version", "key", "value"),
    "latest_metrics": ("run_uuid", "key", "value"),
}
# MLflow's ``current_stage`` of a deleted version, which its SQL store keeps until it is gone for good.
DELETED_STAGE = "Deleted_Internal"


def model_version(name: str, number: int) -> dict[str, Any] | None:
    """``{"run_id", "tags", "artifact_uri", "metrics"}`` of version ``number`` of ``name``, or ``None`` when the
    store is not local SQLite or the version is not found as expected."""
    path = _sqlite_path()
    if path is None:
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as db:
            row = db.execute(
                "SELECT run_id, source, storage_location FROM model_versions"
                " WHERE name = ? AND version = ? AND current_stage != ?",
                (name, number, DELETED_STAGE),
            ).fetchone()
            if row is None:
                return None
            run_id, source, storage_location = row
            artifact_uri = storage_location or source
            if not artifact_uri or not artifact_uri.startswith(("file://", "/")):
                return None
            tags = dict(
                db.execute("SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", (name, number))
            )
            metrics = (
                dict(db.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)))
                if run_id
                else {}
            )
    except sqlite3.Error:
        return None
    return {"run_id": run_id, "tags": tags, "artifact_uri": artifact_uri, "metrics": metrics}


def _sqlite_path() -> str | None:
    """The store's file for ``sqlite:///relative.db`` or ``sqlite:////absolute.db``, URI-quoted for sqlite."""
    uri = settings.MLFLOW_TRACKING_URI
    return quote(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
