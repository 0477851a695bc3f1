"""Serving reads over an MLflow server's REST API (production) agree with the MLflow client (embedded store)."""

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core import contract
from core.errors import MlflowUnavailable, NotFound
from registry_mirror import gateway
from registry_mirror.gateway import serving


def test_rest_reads_match_the_mlflow_client(train, model_name, settings, mlflow_server, tmp_path):
    # given: two versions; what the MLflow client reads of the first from the store
    first, _ = train()["registered_version"], train()["registered_version"]
    expected = gateway.model_version_fetch(name=model_name, version=first, files=["model.onnx"], dst=str(tmp_path))

    # when: the same reads through the server's REST API
    settings.MLFLOW_TRACKING_URI = mlflow_server
    assert gateway.serves_over_rest()
    fetched = gateway.model_version_fetch(
        name=model_name,
        version=first,
        files=["model.onnx", "model.pkl"],
        optional=(contract.INTERVALS_FILE,),
        dst=str(tmp_path / "rest"),
    )

    # then
    assert fetched["feature_names"] == expected["feature_names"]
    assert fetched["tags"][contract.SKLEARN_SHA256_TAG] == expected["tags"][contract.SKLEARN_SHA256_TAG]
    assert fetched["metrics"] == expected["metrics"]
    assert gateway.file_sha256(Path(fetched["paths"]["model.pkl"])) == fetched["tags"][contract.SKLEARN_SHA256_TAG]
    intervals = Path(fetched["paths"][contract.INTERVALS_FILE])
    assert gateway.file_sha256(intervals) == fetched["tags"][contract.INTERVALS_SHA256_TAG]
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_rest_reads_name_what_is_missing_and_what_is_down(
    train, model_name, settings, mlflow_server, tmp_path, closed_port
):
    # given
    version = train()["registered_version"]
    settings.MLFLOW_TRACKING_URI = mlflow_server

    # when / then
    with pytest.raises(NotFound) as missing:
        gateway.model_version_fetch(name=model_name, version=version + 1, files=[], dst=str(tmp_path))
    assert missing.value.extra["mlflow_error"] == "RESOURCE_DOES_NOT_EXIST"
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(MlflowUnavailable):
        gateway.model_version_fetch(name=model_name, version=version, files=[], dst=str(tmp_path))


class CutShortHandler(BaseHTTPRequestHandler):
    """Promises a megabyte and sends a kilobyte before the connection drops."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.wfile.write(b"x" * 1024)

    def log_message(self, *args):
        pass


def test_a_download_cut_short_leaves_no_partial_file(settings, tmp_path):
    # given: an artifact proxy whose connection drops mid-file
    server = ThreadingHTTPServer(("127.0.0.1", 0), CutShortHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{server.server_address[1]}"

    # when
    try:
        with pytest.raises(MlflowUnavailable):
            serving._rest_download("mlflow-artifacts:/1/models/m-1/artifacts", contract.SKLEARN_FILE, tmp_path)
    finally:
        server.shutdown()
        server.server_close()

    # then: nothing under the file's name (or any other) for the next fetch to mistake for the artifact
    assert list(tmp_path.iterdir()) == []
