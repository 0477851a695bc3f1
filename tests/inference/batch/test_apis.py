"""/batch end to end in embedded mode (tasks in-process): a file split into several chunks comes back whole, in
order, with /predict's predictions; options, errors and roles."""

import csv
import io

import numpy as np
import pytest

from inference.models import BatchChunk, BatchJob
from inference.parsing import safe_cell
from tests.factories import csv_bytes, weather_frame

FEATURES = list(weather_frame(1).columns[1:-1])


def rows_of(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_a_file_in_several_chunks_comes_back_whole_in_order(api_client, batch, version, model_name, small_chunks):
    # given: 300 rows with an id column
    frame = weather_frame(300, seed=3)
    frame.insert(0, "id", [f"r{i:04d}" for i in range(len(frame))])
    body = csv_bytes(frame)

    # when
    accepted = batch(body, version=version, passthrough="id", format="sklearn")

    # then: accepted, then finished with every row once, in input order, and /predict's predictions
    assert accepted.status_code == 202, accepted.json()
    job = api_client.get(accepted.json()["url"]).json()
    assert job["status"] == "success", job
    assert job["chunks_total"] > 3
    assert (job["rows_total"], job["rows_done"], job["rows_skipped"], job["progress"]) == (300, 300, 0, 1.0)
    result = api_client.get(job["result_url"])
    assert result.status_code == 200
    assert result["Content-Disposition"].startswith("attachment")
    rows = rows_of(b"".join(result.streaming_content))
    assert [row["id"] for row in rows] == list(frame["id"])
    assert list(rows[0]) == ["id", "prediction"]
    predicted = api_client.generic(
        "POST", f"/predict?model_name={model_name}&version={version}&format=sklearn", body, content_type="text/csv"
    ).json()["predictions"]
    assert np.array_equal([float(row["prediction"]) for row in rows], predicted)
    assert BatchChunk.objects.filter(job_id=job["id"], status="done").count() == job["chunks_total"]


def test_passthrough_cells_are_quoted_and_neutralised_as_predict_writes_them(api_client, batch, version, small_chunks):
    # given: passthrough cells a spreadsheet would run, or that CSV must quote, among plain ones
    frame = weather_frame(60, seed=6)
    frame.insert(0, "note", [["=1+2", "a,b", 'say "hi"', "-5", "plain"][i % 5] for i in range(len(frame))])

    # when
    job = api_client.get(batch(csv_bytes(frame), version=version, passthrough="note").json()["url"]).json()

    # then: each cell as /predict's CSV answer writes it, the plain pieces as the others
    assert job["status"] == "success", job
    rows = rows_of(b"".join(api_client.get(job["result_url"]).streaming_content))
    assert [row["note"] for row in rows] == [safe_cell(note) for note in frame["note"]]
    assert rows[3]["note"] == "-5" and rows[0]["note"] == "'=1+2"


def test_skip_writes_bad_rows_to_the_errors_file(api_client, batch, version, small_chunks):
    # given: two bad cells in 100 rows
    frame = weather_frame(100, seed=4).astype({FEATURES[0]: object, FEATURES[2]: object})
    frame.loc[10, FEATURES[0]] = "abc"
    frame.loc[70, FEATURES[2]] = ""

    # when
    job = api_client.get(batch(csv_bytes(frame), version=version, on_error="skip").json()["url"]).json()

    # then
    assert (job["status"], job["rows_done"], job["rows_skipped"]) == ("success", 98, 2), job
    errors = rows_of(b"".join(api_client.get(job["errors_url"]).streaming_content))
    assert [(row["row"], row["column"]) for row in errors] == [("11", FEATURES[0]), ("71", FEATURES[2])]
    assert "'abc' is not a number" in errors[0]["message"]
    assert len(rows_of(b"".join(api_client.get(job["result_url"]).streaming_content))) == 98


def test_fail_names_the_row_over_the_whole_input(api_client, batch, version, small_chunks):
    frame = weather_frame(100, seed=4).astype({FEATURES[1]: object})
    frame.loc[80, FEATURES[1]] = "x"

    job = api_client.get(batch(csv_bytes(frame), version=version).json()["url"]).json()

    assert job["status"] == "failed"
    assert job["error"]["code"] == "bad_cell"
    assert (job["error"]["extra"]["column"], job["error"]["extra"]["row"]) == (FEATURES[1], 81)
    assert "row 81" in job["error"]["message"]
    assert api_client.get(f"/batch/{job['id']}/result").status_code == 409


def test_parquet_in_and_out(api_client, batch, version, small_chunks):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # given: a Parquet file of several row groups
    frame = weather_frame(120, seed=5)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, row_group_size=20)

    # when
    accepted = batch(
        buffer.getvalue(),
        version=version,
        content_type="application/vnd.apache.parquet",
        output_format="parquet",
        interval=0.9,
    )

    # then
    job = api_client.get(accepted.json()["url"]).json()
    assert job["status"] == "success", job
    result = pq.read_table(io.BytesIO(b"".join(api_client.get(job["result_url"]).streaming_content)))
    assert result.column_names == ["prediction", "lower", "upper"]
    assert result.num_rows == 120


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"model_name": "no_such_model"}, 404, None),
        ({"output_format": "xml"}, 400, None),
        ({"passthrough": "nope"}, 400, "missing_columns"),
        ({"interval": "2"}, 400, None),
    ],
)
def test_bad_requests_are_4xx(batch, version, query, status, code):
    response = batch(csv_bytes(weather_frame(5)), version=version, **query)
    assert response.status_code == status, response.json()
    if code:
        assert response.json()["code"] == code
    assert not BatchJob.objects.exists()


def test_missing_input_is_400(api_client, version, model_name):
    response = api_client.post(f"/batch?model_name={model_name}&version={version}")
    assert response.status_code == 400
    assert response.json()["code"] == "no_input"


def test_roles_and_ownership(batch, role_client, version):
    predictor = role_client("predictor")
    accepted = batch(csv_bytes(weather_frame(5)), client=predictor, version=version)
    assert accepted.status_code == 202
    job_url = accepted.json()["url"]
    assert predictor.get(job_url).status_code == 200
    # another user does not see it
    assert role_client("predictor").get(job_url).status_code == 404
    assert role_client("trainer").get("/batch").json()["count"] == 0
    # cancelling a finished job is a conflict
    assert predictor.post(f"{job_url}/cancel").status_code == 409


def test_cancel_a_queued_job(api_client, version, model_name):
    # given: a job whose planning message has not run (no commit callbacks executed)
    response = api_client.generic(
        "POST",
        f"/batch?model_name={model_name}&version={version}",
        csv_bytes(weather_frame(5)),
        content_type="text/csv",
    )

    # when
    cancelled = api_client.post(f"{response.json()['url']}/cancel")

    # then
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
