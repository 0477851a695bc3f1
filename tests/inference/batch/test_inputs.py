"""/batch inputs and outputs beyond an uploaded CSV: a stored dataset, an object of the datasets bucket, Parquet in
and CSV out (and back), explanations in slices /predict accepts, a first chunk whose rows are all skipped, and the
upload size cap."""

import io
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inference.batch import objects
from inference.models import BatchJob
from tests.factories import csv_bytes, weather_frame
from training.models import TrainingJob

from .test_apis import FEATURES, rows_of


def result_of(api_client, accepted) -> tuple[dict, bytes]:
    assert accepted.status_code == 202, accepted.json()
    job = api_client.get(accepted.json()["url"]).json()
    assert job["status"] == "success", job
    return job, b"".join(api_client.get(job["result_url"]).streaming_content)


def predicted(api_client, model_name, version, body: bytes, **query) -> dict:
    query = "".join(f"&{key}={value}" for key, value in query.items())
    response = api_client.generic(
        "POST", f"/predict?model_name={model_name}&version={version}{query}", body, content_type="text/csv"
    )
    assert response.status_code == 200, response.json()
    return response.json()


def test_a_stored_dataset_is_scored_by_its_id(api_client, train, model_name, django_capture_on_commit_callbacks):
    # given: the dataset a training stored
    trained = train()
    dataset = TrainingJob.objects.get(pk=trained["id"]).dataset

    # when
    with django_capture_on_commit_callbacks(execute=True):
        accepted = api_client.post(
            f"/batch?model_name={model_name}&version={trained['registered_version']}&dataset={dataset.pk}"
        )

    # then: every row of it, as /predict scores them
    job, body = result_of(api_client, accepted)
    with dataset.file.open("rb") as stored:
        raw = stored.read()
    assert job["rows_total"] == raw.count(b"\n") - 1
    expected = predicted(api_client, model_name, trained["registered_version"], raw)["predictions"]
    assert [float(row["prediction"]) for row in rows_of(body)] == expected
    # a dataset one may not see is not found
    assert api_client.post(f"/batch?model_name={model_name}&dataset=999999").status_code == 404


def test_an_object_of_the_datasets_bucket_is_scored_by_its_key(api_client, batch, version, model_name):
    # given: a Parquet file stored beside the datasets
    frame = weather_frame(50, seed=9)
    with tempfile.NamedTemporaryFile(suffix=".parquet") as local:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), local.name)
        objects.put_file("incoming/rows.parquet", local.name)

    # when: read as Parquet (its name), written as CSV
    job, body = result_of(api_client, batch(b"", version=version, object="incoming/rows.parquet"))

    # then
    assert job["input_format"] == "parquet" and job["rows_total"] == 50
    expected = predicted(api_client, model_name, version, csv_bytes(frame))["predictions"]
    assert [float(row["prediction"]) for row in rows_of(body)] == expected
    assert batch(b"", version=version, object="incoming/none.csv").status_code == 404


def test_csv_in_parquet_out_with_passthrough(api_client, batch, version, model_name, small_chunks):
    # given
    frame = weather_frame(150, seed=10)
    body = csv_bytes(frame)

    # when
    job, result = result_of(api_client, batch(body, version=version, output_format="parquet", passthrough="timestamp"))

    # then: the part files' row groups joined, rows in order, the passthrough column first
    table = pq.read_table(io.BytesIO(result))
    assert job["chunks_total"] > 2
    assert table.column_names == ["timestamp", "prediction"]
    assert table.column("timestamp").to_pylist() == [str(stamp) for stamp in frame["timestamp"]]
    assert table.column("prediction").to_pylist() == predicted(api_client, model_name, version, body)["predictions"]


def test_explanations_are_computed_in_slices_predict_accepts(api_client, batch, version, model_name, settings):
    # given: more rows than /predict explains in one request
    settings.MDS_EXPLAIN_MAX_ROWS = 7
    body = csv_bytes(weather_frame(30, seed=11))

    # when
    job, result = result_of(api_client, batch(body, version=version, explain="true"))

    # then: /predict's CSV columns, and its contributions for the rows it accepts
    rows = rows_of(result)
    assert len(rows) == 30
    assert list(rows[0]) == ["prediction", "contribution_base", *(f"contribution_{name}" for name in FEATURES)]
    first = predicted(api_client, model_name, version, csv_bytes(weather_frame(30, seed=11).head(7)), explain="true")
    values = np.array([[float(row[f"contribution_{name}"]) for name in FEATURES] for row in rows[:7]])
    assert np.allclose(values, first["contributions"]["values"])
    sums = [float(row["contribution_base"]) + sum(float(row[f"contribution_{n}"]) for n in FEATURES) for row in rows]
    assert np.allclose(sums, [float(row["prediction"]) for row in rows], rtol=1e-4)


def test_a_first_chunk_whose_rows_are_all_skipped_keeps_the_header(api_client, batch, version, small_chunks):
    # given: every row of the first chunk (~40 rows) bad
    frame = weather_frame(100, seed=12).astype({FEATURES[0]: object})
    frame.loc[:59, FEATURES[0]] = "n/a"

    # when
    job, result = result_of(
        api_client, batch(csv_bytes(frame), version=version, on_error="skip", passthrough="timestamp")
    )

    # then: the header once, then the good rows
    assert job["rows_skipped"] == 60 and job["rows_done"] == 40
    assert result.startswith(b"timestamp,prediction\n")
    assert [row["timestamp"] for row in rows_of(result)] == [str(stamp) for stamp in frame["timestamp"][60:]]


@pytest.mark.parametrize("multipart", [True, False])
def test_an_upload_over_the_cap_is_413_naming_the_limit(api_client, version, model_name, settings, multipart):
    # given
    settings.MDS_BATCH_MAX_UPLOAD_BYTES = 2000
    body = csv_bytes(weather_frame(100))
    url = f"/batch?model_name={model_name}&version={version}"

    # when
    if multipart:
        response = api_client.post(url, {"file": io.BytesIO(body)}, format="multipart")
    else:
        response = api_client.generic("POST", url, body, content_type="text/csv")

    # then
    assert response.status_code == 413, response.json()
    assert response.json()["code"] == "too_large"
    assert response.json()["extra"]["max_bytes"] == 2000
    assert "2000 bytes" in response.json()["message"]
    assert not BatchJob.objects.exists()
