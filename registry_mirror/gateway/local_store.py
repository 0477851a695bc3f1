"""A local MLflow store (``sqlite:///``) read without importing MLflow, for what serving needs.

Importing MLflow costs a serving process ~2-3 s and ~180 MB before its first prediction; in embedded mode the
registry is a SQLite file and the artifacts a local directory, so a version's number, tags, parity metrics and
artifact location are a few read-only queries away. Anything this reader does not find as it expects (another
schema, a version it cannot place, a locked or missing file) returns ``None``, and the caller asks MLflow itself,
which also words the errors (an unknown version is MLflow's ``NotFound``).
"""

import sqlite3
from contextlib import closing
from typing import Any
from urllib.parse import quote

from django.conf import settings


def model_version(name: str, version: str) -> dict[str, Any] | None:
    """``{"version", "run_id", "tags", "artifact_uri"}`` of ``version`` (a number, ``latest``, ``@alias``), or
    ``None`` when the store is not local SQLite or the version is not found as expected."""
    path = _sqlite_path()
    if path is None:
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as db:
            number = _number(db, name, version)
            if number is None:
                return None
            row = db.execute(
                "SELECT run_id, source, storage_location FROM model_versions"
                " WHERE name = ? AND version = ? AND current_stage != 'Deleted_Internal'",
                (name, number),
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
    return {"version": number, "run_id": run_id, "tags": tags, "artifact_uri": artifact_uri, "metrics": metrics}


def _number(db: sqlite3.Connection, name: str, version: str) -> int | None:
    if version.isdigit():
        return int(version)
    if version == "latest":
        row = db.execute(
            "SELECT MAX(version) FROM model_versions WHERE name = ? AND current_stage != 'Deleted_Internal'", (name,)
        ).fetchone()
    else:
        row = db.execute(
            "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
            (name, version.removeprefix("@")),
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _sqlite_path() -> str | None:
    """The store's file for ``sqlite:///relative.db`` or ``sqlite:////absolute.db``, URI-quoted for sqlite."""
    uri = settings.MLFLOW_TRACKING_URI
    return quote(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
