"""The basic /predict contract of a trained version: both formats, one value per row, clear errors."""

import numpy as np
import pytest

from tests.factories import csv_bytes, weather_frame


@pytest.fixture
def version(train):
    return train()["registered_version"]


def predict(api_client, csv_upload, model_name, version, content=None, **query):
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return api_client.post(
        f"/predict?model_name={model_name}&version={version}&{params}", {"file": csv_upload(content)}
    )


def test_both_formats_answer_one_value_per_row_and_agree(api_client, csv_upload, model_name, version):
    # when
    onnx = predict(api_client, csv_upload, model_name, version, format="onnx")
    sklearn = predict(api_client, csv_upload, model_name, version, format="sklearn")

    # then
    assert onnx.status_code == sklearn.status_code == 200
    assert onnx.json()["model"] == {"name": model_name, "version": version, "format": "onnx"}
    assert sklearn.json()["model"]["format"] == "sklearn"
    assert onnx["X-Model-Version"] == str(version)
    a, b = np.array(onnx.json()["predictions"]), np.array(sklearn.json()["predictions"])
    assert a.shape == b.shape == (120,)
    assert np.max(np.abs(a - b) / np.abs(b)) <= 1e-4


def test_onnx_is_the_default_and_rows_keep_their_order(api_client, csv_upload, model_name, version):
    # given: the same rows reversed, without timestamp or target
    frame = weather_frame(120).drop(columns=["timestamp", "target"])
    forward = predict(api_client, csv_upload, model_name, version, csv_bytes(frame)).json()

    # when: by the same engine (the default may have moved to the forest, loaded meanwhile in the background)
    backward = predict(api_client, csv_upload, model_name, version, csv_bytes(frame.iloc[::-1]), format="onnx").json()

    # then
    assert forward["model"]["format"] == "onnx"
    assert backward["predictions"] == forward["predictions"][::-1]


def test_missing_feature_columns_are_listed(api_client, csv_upload, model_name, version):
    # given
    content = csv_bytes(weather_frame(10).drop(columns=["humidity_pct", "pressure_hpa"]))

    # when
    response = predict(api_client, csv_upload, model_name, version, content)

    # then
    assert response.status_code == 400
    assert response.json()["extra"]["missing_columns"] == ["humidity_pct", "pressure_hpa"]
    assert "humidity_pct" in response.json()["message"]


def test_unknown_version_and_unknown_model_are_404(api_client, csv_upload, model_name, version):
    # when
    no_version = predict(api_client, csv_upload, model_name, version + 5)
    no_model = predict(api_client, csv_upload, "never_trained", 1)

    # then
    assert no_version.status_code == no_model.status_code == 404
    assert no_version.json()["code"] == no_model.json()["code"] == "not_found"


@pytest.mark.parametrize("query", ["format=pickle", "version=1.5", "version=@"])
def test_bad_parameters_are_400(api_client, csv_upload, model_name, version, query):
    # when
    response = api_client.post(f"/predict?model_name={model_name}&{query}", {"file": csv_upload()})

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_an_unknown_alias_is_404_naming_it(api_client, csv_upload, model_name, version):
    # when
    response = predict(api_client, csv_upload, model_name, "@staging")

    # then
    assert response.status_code == 404
    assert response.json()["extra"]["alias"] == "staging"
