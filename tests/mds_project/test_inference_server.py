"""The inference server's command: granian serving the inference WSGI application, from start to a clean stop."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_server_answers_on_its_bind_address_and_removes_its_metrics_directory_when_stopped(tmp_path):
    # given
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(TMPDIR=str(tmp_path), MDS_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="mds_project.settings.local")
    command = [sys.executable, "-m", "mds_project.inference_server", "--bind", f"127.0.0.1:{port}"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # when
    try:
        deadline, answer = time.monotonic() + 60, None
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            except requests.ConnectionError:
                time.sleep(0.2)
        metrics_dirs = list(tmp_path.glob("mds-prometheus-*"))
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()

    # then
    assert answer is not None and answer.status_code == 200, output
    assert answer.json() == {"status": "ok"}
    assert len(metrics_dirs) == 1, output
    assert not metrics_dirs[0].exists()
