"""/predict?explain=true: each feature's contribution per row, from the forest's paths (Saabas)."""

import csv
import io
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from core import contract
from registry_mirror import gateway
from tests.factories import csv_bytes, weather_frame

FEATURES = list(weather_frame(1).columns[1:-1])


def predict(api_client, model_name, rows, accept=None, **query):
    url = "/predict?" + "&".join(f"{key}={value}" for key, value in {"model_name": model_name, **query}.items())
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    return api_client.generic("POST", url, csv_bytes(rows), content_type="text/csv", **headers)


@pytest.mark.parametrize("max_depth", [None, 4])
def test_contributions_add_up_to_the_sklearn_prediction(api_client, model_name, train, max_depth):
    # given: a full-depth and a shallow forest, and rows it never saw
    train(**({"max_depth": max_depth} if max_depth else {}))
    rows = weather_frame(300, seed=21).iloc[-200:]

    # when
    response = predict(api_client, model_name, rows, explain="true", format="sklearn")

    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    contributions = body["contributions"]
    values, base = np.array(contributions["values"]), np.array(contributions["base"])
    assert contributions["features"] == FEATURES
    assert values.shape == (200, len(FEATURES)) and base.shape == (200,)
    assert len(set(base)) == 1
    np.testing.assert_allclose(base + values.sum(axis=1), body["predictions"], rtol=0, atol=1e-6)
    # temperature drives the demand, pressure is noise: the contributions say so
    spread = np.abs(values).mean(axis=0)
    assert spread[FEATURES.index("temperature_c")] > spread[FEATURES.index("pressure_hpa")]


def test_with_the_onnx_engine_contributions_still_explain_the_sklearn_prediction(api_client, model_name, train):
    # given
    train()
    rows = weather_frame(10, seed=3)

    # when
    onnx = predict(api_client, model_name, rows, explain="true", format="onnx").json()
    sklearn = predict(api_client, model_name, rows, format="sklearn").json()
    auto = predict(api_client, model_name, rows, explain="true", format="auto").json()

    # then
    assert onnx["model"]["format"] == "onnx" and auto["model"]["format"] == "sklearn"
    explained = np.array(onnx["contributions"]["base"]) + np.array(onnx["contributions"]["values"]).sum(axis=1)
    np.testing.assert_allclose(explained, sklearn["predictions"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(onnx["predictions"], sklearn["predictions"], rtol=1e-4)
    assert auto["contributions"] == onnx["contributions"]


def test_explaining_more_rows_than_the_cap_is_too_large(api_client, model_name, train, settings):
    # given
    train()
    settings.MDS_EXPLAIN_MAX_ROWS = 5

    # when
    at_cap = predict(api_client, model_name, weather_frame(5), explain="true")
    over = predict(api_client, model_name, weather_frame(6), explain="true")
    plain = predict(api_client, model_name, weather_frame(6))

    # then
    assert at_cap.status_code == 200
    assert over.status_code == 413
    assert over.json()["code"] == "too_large"
    assert over.json()["extra"] == {"rows": 6, "max_rows": 5}
    assert plain.status_code == 200


@pytest.mark.parametrize("flag", ["maybe", "2", ""])
def test_explain_takes_a_boolean(api_client, model_name, train, flag):
    # given
    train()

    # when
    response = predict(api_client, model_name, weather_frame(2), explain=flag)

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert response.json()["message"].startswith("explain:")


def test_explain_false_adds_nothing(api_client, model_name, train):
    # given
    train()

    # when
    body = predict(api_client, model_name, weather_frame(2), explain="false").json()

    # then
    assert set(body) == {"predictions", "model", "request_id"}


def test_csv_answers_carry_the_contributions_as_columns(api_client, model_name, train):
    # given
    train()
    rows = weather_frame(3)

    # when
    response = predict(api_client, model_name, rows, accept="text/csv", explain="true", interval=0.8)

    # then
    assert response.status_code == 200
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    contribution_columns = ["contribution_base", *(f"contribution_{feature}" for feature in FEATURES)]
    assert list(table[0])[-len(contribution_columns) - 3 :] == [
        "prediction",
        "prediction_lower",
        "prediction_upper",
        *contribution_columns,
    ]
    for row in table:
        explained = sum(float(row[column]) for column in contribution_columns)
        assert explained == pytest.approx(float(row["prediction"]), rel=1e-4)


def test_an_untrusted_pickle_is_not_loaded_to_explain(api_client, model_name, train):
    # given: the stored sklearn file was replaced after training
    version = train()["registered_version"]
    uri = gateway.client().get_model_version_download_uri(model_name, str(version))
    pickle_path = Path(urlparse(uri).path) / contract.SKLEARN_FILE
    pickle_path.write_bytes(pickle_path.read_bytes() + b"\n")

    # when
    explained = predict(api_client, model_name, weather_frame(2), explain="true")
    plain = predict(api_client, model_name, weather_frame(2))

    # then
    assert explained.status_code == 409
    assert explained.json()["code"] == "untrusted_artifact"
    assert plain.status_code == 200
