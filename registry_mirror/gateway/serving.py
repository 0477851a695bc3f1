"""What the inference cache needs from the registry: a version's serving files and what it must know of them.

Against an MLflow server these use its REST API directly (``rest``), and against an embedded SQLite store they
read it directly (``local_store``), so a serving process never imports MLflow.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

from core.contract import FILE_SHA256_TAGS, PARITY_METRICS
from core.errors import ApplicationError, MlflowUnavailable, NotFound

from . import local_store, rest
from .client import client
from .errors import translated_errors, unreachable


def model_version_fetch(
    *, name: str, version: int, files: list[str], dst: str, optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Download only ``files`` of a version's model directory into ``dst``, with what serving needs to know.

    A file of ``optional`` is downloaded only if the version records its checksum (``FILE_SHA256_TAGS``):
    versions trained before that file existed lack it, and are served without it.

    Returns a JSON-able dict: ``feature_names`` (the signature's inputs), ``tags`` (checksums recorded at
    training), ``metrics`` (the run's ONNX parity) and ``paths`` (file name -> local path).
    """
    if serves_over_rest():
        return _rest_model_version_fetch(name, version, files, optional, Path(dst))
    local = local_store.model_version(name, version)
    if local is not None:
        return _files_fetch(local["artifact_uri"], local["tags"], local["metrics"], files, optional, Path(dst))
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    mlflow_client = client()
    with translated_errors():
        model_version = mlflow_client.get_model_version(name, str(version))
        source = mlflow_client.get_model_version_download_uri(name, str(version)).rstrip("/")
        paths = {
            file: download_artifacts(
                artifact_uri=f"{source}/{file}", dst_path=dst, tracking_uri=settings.MLFLOW_TRACKING_URI
            )
            for file in ["MLmodel", *files, *_recorded(optional, model_version.tags)]
        }
        metrics = mlflow_client.get_run(model_version.run_id).data.metrics if model_version.run_id else {}
    signature = Model.load(paths.pop("MLmodel")).signature
    return {
        "feature_names": list(signature.inputs.input_names()) if signature else [],
        "tags": dict(model_version.tags),
        "metrics": {key: float(metrics[key]) for key in PARITY_METRICS if key in metrics},
        "paths": paths,
    }


def model_version_file_read(*, name: str, version: int, file: str) -> bytes:
    """One small file of a version's model directory (such as its feature profile); ``NotFound`` if the version
    or the file does not exist."""
    with tempfile.TemporaryDirectory(prefix="mds-file-") as tmp:
        try:
            fetched = model_version_fetch(name=name, version=version, files=[file], dst=tmp)
        except ApplicationError:
            raise
        except Exception as exc:
            # The local store reports a missing file as an OSError or an MlflowException of its own wording.
            if isinstance(exc, OSError) or type(exc).__name__ == "MlflowException":
                raise NotFound(
                    f"Version {version} of {name!r} has no file {file!r}.",
                    extra={"model_name": name, "version": version, "file": file},
                ) from exc
            raise
        return Path(fetched["paths"][file]).read_bytes()


def tracking_server_check(*, timeout: float) -> str:
    """Raise ``MlflowUnavailable`` unless the tracking server (or local store) answers within ``timeout`` s."""
    if not serves_over_rest():
        with translated_errors():
            client().search_experiments(max_results=1)
        return "local store"
    response = rest.request("GET", "health", timeout=timeout)
    if not response.ok:
        raise MlflowUnavailable(f"MLflow answered its health check with HTTP {response.status_code}")
    return "server"


def _recorded(optional: tuple[str, ...], tags: dict[str, str]) -> list[str]:
    return [file for file in optional if FILE_SHA256_TAGS.get(file) in tags]


def serves_over_rest() -> bool:
    """Whether the serving calls can use MLflow's REST API directly (an MLflow server) instead of the client."""
    return settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://"))


def _rest_model_version_fetch(
    name: str, version: int, files: list[str], optional: tuple[str, ...], dst: Path
) -> dict[str, Any]:
    model_version = rest.get("2.0/mlflow/model-versions/get", name=name, version=str(version))["model_version"]
    tags = {tag["key"]: tag["value"] for tag in model_version.get("tags", [])}
    source = rest.get("2.0/mlflow/model-versions/get-download-uri", name=name, version=str(version))["artifact_uri"]
    run_id = model_version.get("run_id")
    metrics = rest.get("2.0/mlflow/runs/get", run_id=run_id)["run"]["data"].get("metrics", []) if run_id else []
    metrics = {m["key"]: m["value"] for m in metrics}
    return _files_fetch(source, tags, metrics, files, optional, dst)


def _files_fetch(
    source: str, tags: dict[str, str], metrics: dict[str, Any], files: list[str], optional: tuple[str, ...], dst: Path
) -> dict[str, Any]:
    """What ``model_version_fetch`` returns, for a version whose model directory is at ``source``."""
    import yaml

    dst.mkdir(parents=True, exist_ok=True)
    wanted = ["MLmodel", *files, *_recorded(optional, tags)]
    paths = {file: str(_rest_download(source.rstrip("/"), file, dst)) for file in wanted}
    mlmodel = yaml.safe_load(Path(paths.pop("MLmodel")).read_text())
    inputs = json.loads((mlmodel.get("signature") or {}).get("inputs") or "[]")
    return {
        "feature_names": [column["name"] for column in inputs if "name" in column],
        "tags": tags,
        "metrics": {key: float(value) for key, value in metrics.items() if key in PARITY_METRICS},
        "paths": paths,
    }


def _rest_download(source: str, file: str, dst: Path) -> Path:
    """One artifact file, through the server's artifact proxy (``mlflow-artifacts:``) or from a local store.

    The file appears under its name only once complete: a download cut short leaves nothing behind, so the
    next fetch starts over instead of finding (and trusting the presence of) a partial file.
    """
    target = dst / file
    if source.startswith(("file://", "/")):
        with _written_atomically(target) as partial:
            shutil.copyfile(source.removeprefix("file://") + "/" + file, partial)
        return target
    if not source.startswith("mlflow-artifacts:"):
        raise ApplicationError(
            f"Artifacts at {source.split(':')[0]}: are not served by the MLflow server; use its artifact proxy.",
            code="registry_error",
        )
    path = re.sub(r"^mlflow-artifacts:(//[^/]*)?/*", "", source)
    with rest.request("GET", f"api/2.0/mlflow-artifacts/artifacts/{path}/{file}", stream=True) as answer:
        if answer.status_code == 404:
            raise NotFound(f"Artifact {file!r} of {source} does not exist.")
        if not answer.ok:
            raise MlflowUnavailable(f"MLflow failed to serve {file!r}: HTTP {answer.status_code}")
        try:
            with _written_atomically(target) as partial, open(partial, "wb") as handle:
                for chunk in answer.iter_content(1 << 20):
                    handle.write(chunk)
        except requests.RequestException as exc:
            raise unreachable(exc) from exc
    return target


@contextlib.contextmanager
def _written_atomically(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed to it if the block completes and removed if it does not."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
