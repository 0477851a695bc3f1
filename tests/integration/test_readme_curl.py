"""The README's quick-start curl commands, verbatim, against the real stack: /train on web, /predict on inference."""

import json
import os
import re
import subprocess

import pytest

from .support import ROOT

pytestmark = pytest.mark.integration

EMBEDDED_URL = "http://127.0.0.1:8000"


def quick_start_curls() -> list[str]:
    """The curl commands of the README's quick start, continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    commands = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [re.sub(r"\s+", " ", command) for command in commands if command.startswith("curl ")]


def run_curl(command: str, token: str) -> dict:
    result = subprocess.run(
        ["bash", "-c", f"{command} --silent --show-error --fail-with-body"],
        cwd=ROOT,
        env={**os.environ, "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_readme_quick_start_curls_work_against_web_and_inference(stack):
    # given: the two quick-start commands, pointed at the stack's web (/train) and inference (/predict) ports
    train_command, predict_command = quick_start_curls()
    assert f"{EMBEDDED_URL}/train" in train_command and f"{EMBEDDED_URL}/predict" in predict_command
    train_command = train_command.replace(EMBEDDED_URL, stack.web_url)
    predict_command = predict_command.replace(EMBEDDED_URL, stack.inference_url)

    # when
    job = run_curl(train_command, stack.token)
    prediction = run_curl(predict_command, stack.token)

    # then
    assert job["status"] == "success", job
    assert job["trained_models"][0]["name"] == "rf_regressor"
    assert job["dataset"]["n_rows"] == 730
    assert prediction["model"]["name"] == "rf_regressor"
    assert prediction["model"]["version"] == 1
    assert len(prediction["predictions"]) == 730
