"""/predict end to end against a real (temporary) MLflow store: inputs, outputs, addressing, errors."""

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from inference.model_cache import model_cache
from registry_mirror import gateway
from registry_mirror.services import model_alias_set
from tests.factories import csv_bytes, weather_frame

# The feature columns of the sample data, in file order.
FEATURES = list(weather_frame(1).columns[1:-1])


@pytest.fixture
def version(train):
    return train()["registered_version"]


@pytest.fixture
def rows():
    return weather_frame(5)


def post(api_client, model_name, body, content_type="text/csv", accept=None, **query):
    query = {"model_name": model_name, **query}
    url = "/predict?" + "&".join(f"{key}={value}" for key, value in query.items())
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    return api_client.generic("POST", url, body, content_type=content_type, **headers)


def test_csv_body_json_formats_and_multipart_agree(api_client, model_name, version, rows, csv_upload):
    # given: the same rows in every input format, and the forest loaded, so the default engine is the same for
    # every request rather than ONNX until the background load finishes (the two differ in the 6th digit)
    assert model_cache().get(model_name, version).pickle.usable()
    features = rows[FEATURES]
    bodies = {
        "text/csv": csv_bytes(rows),
        "dataframe_split": json.dumps({"dataframe_split": features.to_dict(orient="split", index=False)}),
        "dataframe_records": json.dumps({"dataframe_records": features.to_dict(orient="records")}),
        "instances": json.dumps({"instances": features.to_numpy().tolist()}),
    }

    # when: one engine for all (`auto` would switch to sklearn whenever its background load happens to finish)
    answers = {
        name: post(
            api_client, model_name, body, "text/csv" if name == "text/csv" else "application/json", format="onnx"
        )
        for name, body in bodies.items()
    }
    answers["multipart"] = api_client.post(
        f"/predict?model_name={model_name}&version={version}&format=onnx", {"file": csv_upload(csv_bytes(rows))}
    )

    # then
    assert {name: response.status_code for name, response in answers.items()} == dict.fromkeys(answers, 200)
    predictions = {name: response.json()["predictions"] for name, response in answers.items()}
    assert all(len(values) == 5 for values in predictions.values())
    assert len({tuple(values) for values in predictions.values()}) == 1


def test_accept_text_csv_returns_the_rows_with_a_prediction_column(api_client, model_name, version, rows):
    # given: a text column a spreadsheet would run as a formula, and the forest loaded, so that both requests get
    # the same default engine rather than ONNX until the background load finishes
    rows = rows.assign(note=["=1+1", "@cmd", "ok", "-3", "+x"])
    assert model_cache().get(model_name, version).pickle.usable()

    # when
    response = post(api_client, model_name, csv_bytes(rows), accept="text/csv")

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["X-Model-Version"] == str(version)
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["note"] for row in table] == ["'=1+1", "'@cmd", "ok", "-3", "'+x"]
    assert table[0]["temperature_c"] == str(rows["temperature_c"].iloc[0])
    json_answer = post(api_client, model_name, csv_bytes(rows)).json()["predictions"]
    assert [float(row["prediction"]) for row in table] == json_answer


def test_csv_refused_by_its_q_value_answers_json(api_client, model_name, version, rows):
    # when: CSV explicitly not acceptable, CSV preferred over JSON
    refused = post(api_client, model_name, csv_bytes(rows), accept="text/csv;q=0, */*")
    preferred = post(api_client, model_name, csv_bytes(rows), accept="application/json;q=0.5, text/csv")

    # then
    assert refused.status_code == preferred.status_code == 200
    assert refused["Content-Type"] == "application/json" and len(refused.json()["predictions"]) == len(rows)
    assert preferred["Content-Type"].startswith("text/csv")


def test_a_pass_through_cell_with_a_bare_cr_cannot_start_a_row_holding_a_formula(
    api_client, model_name, version, rows
):
    # given: a cell whose second line is a live formula
    records = rows[FEATURES].head(2).to_dict(orient="records")
    records[0]["note"] = "harmless\r=cmd|' /C calc'!A0"
    records[1]["note"] = "-3"

    # when
    response = post(
        api_client, model_name, json.dumps({"dataframe_records": records}), "application/json", accept="text/csv"
    )

    # then: two rows, the formula neutralised inside its quoted cell, the number left as it is
    assert response.status_code == 200
    text = response.content.decode()
    assert "\r=" not in text
    table = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [row["note"] for row in table] == ["harmless\r'=cmd|' /C calc'!A0", "-3"]
    assert all(float(row["prediction"]) for row in table)


def test_errors_stay_json_when_csv_is_accepted(api_client, model_name, version):
    # when
    response = post(api_client, model_name, b"nope\n1\n", accept="text/csv")

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "missing_columns"


def test_version_latest_and_aliases_name_the_version_that_served(api_client, model_name, train, rows):
    # given: two versions, champion on the first
    first = train()["registered_version"]
    second = train()["registered_version"]
    gateway.model_alias_set(name=model_name, alias="champion", version=first)

    # when
    answers = {
        "number": post(api_client, model_name, csv_bytes(rows), version=second),
        "latest": post(api_client, model_name, csv_bytes(rows), version="latest"),
        "alias": post(api_client, model_name, csv_bytes(rows), alias="champion"),
        "@alias": post(api_client, model_name, csv_bytes(rows), version="@champion"),
    }

    # then
    served = {name: int(response["X-Model-Version"]) for name, response in answers.items()}
    assert served == {"number": second, "latest": second, "alias": first, "@alias": first}
    assert answers["alias"].json()["model"] == {"name": model_name, "version": first, "format": "onnx"}


# The alias is re-resolved in another thread, which reads MDS's database: on SQLite it must see committed rows.
@pytest.mark.django_db(transaction=True)
def test_moving_an_alias_takes_effect_without_a_restart(api_client, model_name, train, rows, monkeypatch):
    # given: champion served from the first version, and aliases that expire at once
    first, second = train()["registered_version"], train()["registered_version"]
    monkeypatch.setattr(model_cache(), "alias_ttl", 0.0)
    assert post(api_client, model_name, csv_bytes(rows), alias="champion")["X-Model-Version"] == str(first)

    # when
    model_alias_set(name=model_name, alias="champion", version=second, user=None, force=True)

    # then: the known version answers while the alias is re-resolved in the background, then the new one
    served = []
    deadline = time.monotonic() + 30
    while str(second) not in served and time.monotonic() < deadline:
        served.append(post(api_client, model_name, csv_bytes(rows), alias="champion")["X-Model-Version"])
        time.sleep(0.1)
    assert served[-1] == str(second)
    assert set(served) <= {str(first), str(second)}


def test_a_missing_version_is_a_404_naming_it(api_client, model_name, version, rows):
    # when
    response = post(api_client, model_name, csv_bytes(rows), version=version + 7)

    # then
    assert response.status_code == 404
    assert str(version + 7) in response.json()["message"]


def test_a_bad_cell_is_a_400_naming_row_and_column(api_client, model_name, version, rows):
    # given
    body = csv_bytes(rows).replace(str(rows["pressure_hpa"].iloc[2]).encode(), b"high", 1)

    # when
    response = post(api_client, model_name, body)

    # then
    assert response.status_code == 400
    assert response.json()["extra"] == {"column": "pressure_hpa", "row": 3}


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"", "text/csv", "no_input"),
        (b"\xff\xfe\x00", "text/csv", "not_csv"),
        (b"{", "application/json", "not_json"),
        (b'{"instances": [[1, 2]]}', "application/json", "bad_json"),
        (b"", "multipart/form-data; boundary=x", "no_input"),
    ],
)
def test_malformed_input_is_a_400_never_a_500(api_client, model_name, version, body, content_type, code):
    # when
    response = post(api_client, model_name, body, content_type)

    # then
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_more_rows_or_bytes_than_the_limits_are_413(api_client, model_name, version, settings):
    # given
    settings.MDS_PREDICT_MAX_ROWS = 10
    settings.MDS_PREDICT_MAX_BYTES = 5000
    body = csv_bytes(weather_frame(11))

    # when
    too_many_rows = post(api_client, model_name, body)
    too_many_bytes = post(api_client, model_name, body * 10)

    # then
    assert too_many_rows.status_code == too_many_bytes.status_code == 413
    assert too_many_rows.json()["extra"] == {"rows": 11, "max_rows": 10}
    assert too_many_bytes.json()["code"] == "too_large"


def test_without_the_compiled_walk_auto_picks_onnx_for_small_batches_and_sklearn_for_large_ones(
    api_client, model_name, version, settings, no_compiled_walk
):
    # given: sklearn loaded (until then ONNX answers while it loads: tests/inference/test_engine_choice.py)
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 50
    frame = weather_frame(50)
    model_cache().get(model_name, version).pickle.load()

    # when
    small = post(api_client, model_name, csv_bytes(frame.iloc[:49]), format="auto")
    large = post(api_client, model_name, csv_bytes(frame), format="auto")

    # then
    assert small.json()["model"]["format"] == "onnx"
    assert large.json()["model"]["format"] == "sklearn"
    np.testing.assert_allclose(small.json()["predictions"], large.json()["predictions"][:49], rtol=1e-4)


def test_auto_uses_sklearn_when_the_recorded_onnx_parity_is_out_of_tolerance(
    api_client, model_name, version, settings
):
    # given: a tolerance no float32 conversion meets
    settings.MDS_AUTO_MAX_REL_DIFF = 0.0

    # when
    response = post(api_client, model_name, csv_bytes(weather_frame(3)), format="auto")

    # then
    assert response.json()["model"]["format"] == "sklearn"


def test_ready_reports_the_loaded_versions(api_client, model_name, version, rows):
    # given
    post(api_client, model_name, csv_bytes(rows), version=version)

    # when
    response = api_client.get("/health/ready")

    # then
    assert response.status_code == 200
    assert {"name": model_name, "version": version} in [
        {"name": entry["name"], "version": entry["version"]} for entry in response.json()["loaded"]
    ]


def test_a_cached_version_serves_while_mlflow_is_unavailable(api_client, model_name, train, rows, settings):
    # given: the first version (champion) is known, a second one never loaded, then MLflow goes away
    version, not_loaded = train()["registered_version"], train()["registered_version"]
    assert post(api_client, model_name, csv_bytes(rows), alias="champion").status_code == 200
    assert post(api_client, model_name, csv_bytes(rows), format="sklearn").status_code == 200
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"

    # when
    by_number = post(api_client, model_name, csv_bytes(rows), version=version, format="sklearn")
    by_alias = post(api_client, model_name, csv_bytes(rows), alias="champion")
    unloaded = post(api_client, model_name, csv_bytes(rows), version=not_loaded)
    unknown = post(api_client, model_name, csv_bytes(rows), version=not_loaded + 1)

    # then: what is served is MDS's to say, without MLflow; only loading files needs it
    assert by_number.status_code == by_alias.status_code == 200
    assert unloaded.status_code == 503
    assert unloaded.json()["code"] == "mlflow_unavailable"
    assert int(unloaded["Retry-After"]) > 0
    assert unknown.status_code == 404


def test_a_tampered_sklearn_artifact_is_refused(api_client, model_name, version, rows, settings):
    # given: the pickle in the artifact store no longer matches the checksum recorded at training
    model_id = gateway.model_versions_page(page_size=10, name=model_name).items[0].model_id
    artifacts = Path(settings.MLFLOW_ARTIFACT_ROOT.removeprefix("file://"))
    (pickle_path,) = artifacts.glob(f"**/{model_id}/artifacts/model.pkl")
    with open(pickle_path, "ab") as handle:
        handle.write(b"tampered")

    # when
    sklearn = post(api_client, model_name, csv_bytes(rows), format="sklearn")
    onnx = post(api_client, model_name, csv_bytes(rows), format="onnx")

    # then
    assert sklearn.status_code == 409
    assert sklearn.json()["code"] == "untrusted_artifact"
    assert onnx.status_code == 200


@pytest.mark.parametrize(
    "query", ["version=12345678901234567890", "alias=9lives", "format=auto&alias=a&version=1", "model_name=x'y"]
)
def test_bad_addressing_is_a_400(api_client, model_name, query, rows):
    # when
    response = api_client.post(f"/predict?model_name={model_name}&{query}", csv_bytes(rows), content_type="text/csv")

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
