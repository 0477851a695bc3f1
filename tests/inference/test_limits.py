"""Caps on /predict input that hold before any per-column work, and the per-user predict throttle."""

import json
import time

import pytest

from tests.factories import csv_bytes, weather_frame

WIDE = 300_000


@pytest.fixture
def version(train):
    return train()["registered_version"]


def wide_bodies(n_columns: int) -> dict[str, tuple[bytes | str, str]]:
    names = [f"c{i}" for i in range(n_columns)]
    return {
        "dataframe_split": (json.dumps({"dataframe_split": {"columns": names, "data": [[0] * n_columns]}}), "json"),
        "dataframe_records": (json.dumps({"dataframe_records": [dict.fromkeys(names, 0)]}), "json"),
        "inputs": (json.dumps({"inputs": {name: [0] for name in names}}), "json"),
        "csv": ((",".join(names) + "\n" + ",".join("0" * n_columns) + "\n").encode(), "csv"),
    }


def post(api_client, model_name, body, kind):
    content_type = "application/json" if kind == "json" else "text/csv"
    return api_client.post(f"/predict?model_name={model_name}", body, content_type=content_type)


@pytest.mark.parametrize("body_format", ["dataframe_split", "csv"])
def test_a_300000_column_body_is_a_400_in_well_under_a_second(api_client, model_name, version, body_format):
    # given: 3-4 MB of body naming 300 000 columns, for a version already loaded
    body, kind = wide_bodies(WIDE)[body_format]
    assert post(api_client, model_name, csv_bytes(weather_frame(1)), "csv").status_code == 200

    # when
    started = time.perf_counter()
    response = post(api_client, model_name, body, kind)
    elapsed = time.perf_counter() - started

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_columns"
    assert response.json()["extra"] == {"columns": WIDE, "max_columns": 1000}
    # ~0.1 s on a quiet machine; the quadratic check this replaced took over 60 s. The bound leaves room for a
    # shared machine's load without letting a per-column scan back in.
    assert elapsed < 5, f"{elapsed:.2f} s"


@pytest.mark.parametrize("body_format", ["dataframe_split", "dataframe_records", "inputs", "csv"])
def test_every_body_format_refuses_more_columns_than_the_cap(api_client, model_name, version, body_format, settings):
    # given
    settings.MDS_MAX_COLUMNS = 20
    body, kind = wide_bodies(21)[body_format]

    # when
    response = post(api_client, model_name, body, kind)

    # then
    assert response.status_code == 400
    assert response.json()["extra"] == {"columns": 21, "max_columns": 20}


def test_predict_throttle_answers_429_with_retry_after(api_client, model_name, version, settings):
    # given
    settings.MDS_THROTTLE_PREDICT = "2/minute"
    body = csv_bytes(weather_frame(2))

    # when
    answers = [api_client.post(f"/predict?model_name={model_name}", body, content_type="text/csv") for _ in range(3)]

    # then
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert 0 < int(answers[2]["Retry-After"]) <= 60
    assert answers[2].json()["code"] == "throttled"
    assert answers[2].json()["extra"]["retry_after_seconds"] == int(answers[2]["Retry-After"])


@pytest.mark.parametrize("body_format", ["dataframe_records", "csv"])
def test_a_5_mb_bad_cell_is_a_400_of_a_few_hundred_bytes(api_client, model_name, version, body_format):
    # given: a 5 MB text cell where a number is expected
    frame = weather_frame(2).astype({"humidity_pct": object})
    frame.loc[1, "humidity_pct"] = "w" * 5_000_000
    if body_format == "csv":
        body, kind = csv_bytes(frame), "csv"
    else:
        body, kind = json.dumps({"dataframe_records": frame.to_dict(orient="records")}, default=str), "json"

    # when
    response = post(api_client, model_name, body, kind)

    # then
    assert response.status_code == 400
    assert len(response.content) < 600
    assert response.json()["code"] == "bad_cell"
    assert "… (5000000 characters)" in response.json()["message"]


def test_a_large_json_body_over_the_row_cap_is_a_413_counted_as_it_streams(api_client, model_name, version, settings):
    # given
    settings.MDS_PREDICT_MAX_ROWS = 1000
    body = json.dumps({"instances": [[1, 2, 3, 4, 5, 6]] * 30_000})

    # when
    response = post(api_client, model_name, body, "json")

    # then
    assert response.status_code == 413
    assert response.json() == {
        "message": "Too many rows: more than 1000; at most 1000 per request.",
        "code": "too_large",
        "extra": {"rows": 1001, "max_rows": 1000},
    }
