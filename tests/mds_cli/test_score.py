"""``python -m mds score`` as a user runs it, against a live server that scores inside the request (test settings)."""

import csv
import json
import re
import uuid

import pytest
import requests

from inference.models import BatchJob
from mds.client import ApiClient, UploadInterrupted

from .test_cli import SAMPLE, mds, token  # noqa: F401 (the token fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def model(live_server, token) -> str:  # noqa: F811
    """A registered version 1 of a small forest, trained through the API."""
    name = f"score_{uuid.uuid4().hex[:8]}"
    with open(SAMPLE, "rb") as sample:
        trained = requests.post(
            f"{live_server.url}/train",
            params={"model_name": name, "n_estimators": 5, "backtest": 0},
            files={"file": sample},
            headers={"Authorization": f"Token {token}"},
            timeout=300,
        )
    assert trained.json()["status"] == "success", trained.text
    return name


def test_score_uploads_follows_and_downloads_predictions_equal_to_predict(live_server, token, model, tmp_path):  # noqa: F811
    # given
    out = tmp_path / "scored.csv"

    # when
    result = mds(
        "score",
        str(SAMPLE),
        "--model-name",
        model,
        "--version",
        "1",
        "--passthrough",
        "timestamp",
        "-o",
        str(out),
        url=live_server.url,
        token=token,
    )

    # then: the three bars, the summary, and the result in input order
    assert result.returncode == 0, result.stderr
    rows = len(SAMPLE.read_text().splitlines()) - 1
    match = re.match(rf"batch (\d+) success: {rows:,} rows scored by {model} version 1\n", result.stdout)
    assert match, result.stdout
    assert f"result: {out}" in result.stdout
    assert "uploaded time_series_weather.csv" in result.stderr and "downloaded scored.csv" in result.stderr
    with out.open(newline="") as scored:
        table = list(csv.DictReader(scored))
    inputs = list(csv.DictReader(SAMPLE.open(newline="")))
    assert [row["timestamp"] for row in table] == [row["timestamp"] for row in inputs]
    predicted = requests.post(
        f"{live_server.url}/predict",
        params={"model_name": model, "version": 1},
        data=SAMPLE.read_bytes(),
        headers={"Authorization": f"Token {token}", "Content-Type": "text/csv"},
        timeout=60,
    ).json()["predictions"]
    assert [float(row["prediction"]) for row in table] == pytest.approx(predicted, rel=1e-9)
    assert not list(tmp_path.glob("*.part"))

    # and: the job as `batch` and `batches` show it
    job_id = match.group(1)
    shown = mds("batch", job_id, "--json", url=live_server.url, token=token)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["rows_done"] == rows
    listed = mds("batches", "--limit", "1", url=live_server.url, token=token)
    assert listed.stdout.startswith(f"batch {job_id} success"), listed.stdout


def test_bad_rows_are_skipped_into_the_errors_file_or_fail_the_job(live_server, token, model, tmp_path):  # noqa: F811
    # given: data row 3 has a feature that is not a number
    lines = SAMPLE.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[1] = "wet"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:3], ",".join(cells), *lines[4:]]) + "\n")
    rows = len(lines) - 1

    # when
    skipped = mds(
        "score", str(bad), "--model-name", model, "--on-error", "skip", "-o", str(tmp_path / "out.csv"),
        url=live_server.url, token=token,
    )  # fmt: skip
    failed = mds(
        "score", str(bad), "--model-name", model, "--version", "1", "-o", str(tmp_path / "never.csv"),
        url=live_server.url, token=token,
    )  # fmt: skip

    # then: skipped, the row is named in the errors file beside the result
    assert skipped.returncode == 0, skipped.stderr
    assert f"{rows - 1:,} rows scored by {model} version 1, 1 skipped" in skipped.stdout
    assert len((tmp_path / "out.csv").read_text().splitlines()) == rows
    errors = list(csv.DictReader((tmp_path / "out.errors.csv").open(newline="")))
    assert [(row["row"], row["column"]) for row in errors] == [("3", header[1])]
    assert "wet" in errors[0]["message"]

    # and: without skip, the job fails naming the column and the row, and nothing is written
    assert failed.returncode == 1, failed.stderr
    assert re.search(rf"batch \d+ failed: \w+: .*{header[1]}.*row 3", failed.stdout), failed.stdout
    assert not (tmp_path / "never.csv").exists()


def test_ctrl_c_during_the_upload_scores_nothing(live_server, token):  # noqa: F811
    # given
    client = ApiClient(url=live_server.url, token=token)

    def interrupted(sent: int) -> None:
        raise KeyboardInterrupt

    # when
    with pytest.raises(UploadInterrupted) as raised:
        client.batch_start(path=SAMPLE, options={"model_name": "score_never"}, on_sent=interrupted)

    # then
    assert raised.value.uploaded is False
    assert not BatchJob.objects.filter(model_name="score_never").exists()


def test_an_interrupted_download_leaves_no_file_and_batch_result_gets_it(live_server, token, model, tmp_path):  # noqa: F811
    # given: a finished job
    client = ApiClient(url=live_server.url, token=token)
    job = client.batch_start(path=SAMPLE, options={"model_name": model}, on_sent=lambda sent: None, wait=300)
    assert job["status"] == "success", job
    out = tmp_path / "result.csv"

    def interrupted(received: int, length: int | None) -> None:
        if received:
            raise KeyboardInterrupt

    # when: Ctrl-C after the first block
    with pytest.raises(KeyboardInterrupt):
        client.batch_download(job_id=job["id"], what="result", path=out, on_received=interrupted)

    # then: neither the result nor a part of it is left
    assert list(tmp_path.iterdir()) == []

    # when: downloaded again
    again = mds("batch-result", str(job["id"]), "-o", str(out), url=live_server.url, token=token)

    # then
    assert again.returncode == 0, again.stderr
    assert len(out.read_text().splitlines()) == len(SAMPLE.read_text().splitlines())
