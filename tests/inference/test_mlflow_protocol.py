"""MLflow's scoring protocol (/invocations, /ping, /version): /predict's rules, MLflow's shapes."""

import json
from importlib import metadata

import pytest
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from inference.mlflow_protocol import served_model, served_model_check
from inference.models import PredictionLog
from inference.prediction_log import prediction_log_flush
from tests.factories import csv_bytes, weather_frame

ROWS = weather_frame(4)
FEATURES = list(ROWS.columns[1:-1])


@pytest.fixture
def version(train):
    return train()["registered_version"]


@pytest.fixture
def pinned(settings, model_name, version):
    """A server pinned to the model's champion, as `mlflow models serve -m models:/NAME@champion`."""
    settings.MDS_SERVE_MODEL = f"{model_name}@champion"
    return version


def invoke(client, body, content_type="application/json", query=""):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.generic("POST", f"/invocations{query}", data, content_type=content_type)


def predictions_counted(model_name: str) -> float:
    """Answers counted in /metrics for the model (under protocol="mlflow" where the metric has that label)."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "mds_predictions"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("model") == model_name
        and sample.labels.get("protocol", "mlflow") == "mlflow"
    )


def test_every_mlflow_body_is_answered_with_mlflows_shape_and_predicts_as_predict(api_client, model_name, pinned):
    # given: the rows in each of MLflow's bodies, one with params (which a forest ignores, as MLflow does)
    features = ROWS[FEATURES]
    split = features.to_dict(orient="split", index=False)
    bodies = {
        "csv": (csv_bytes(ROWS), "text/csv"),
        "dataframe_split": ({"dataframe_split": split, "params": {"predict_method": "predict"}}, "application/json"),
        "dataframe_records": ({"dataframe_records": features.to_dict(orient="records")}, "application/json"),
        "instances": ({"instances": features.to_numpy().tolist()}, "application/json; charset=utf-8"),
        "inputs": ({"inputs": {column: features[column].tolist() for column in FEATURES}}, "application/json"),
    }
    expected = api_client.generic(
        "POST", f"/predict?model_name={model_name}&format=onnx", csv_bytes(ROWS), content_type="text/csv"
    )

    # when
    answers = {name: invoke(api_client, body, kind, "?format=onnx") for name, (body, kind) in bodies.items()}

    # then
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(bodies, 200)
    assert all(answer.json() == {"predictions": expected.json()["predictions"]} for answer in answers.values())
    assert answers["csv"]["X-Model-Version"] == str(pinned) and answers["csv"]["X-Request-Id"]


def test_the_query_string_names_another_model_than_the_pinned_one(api_client, settings, model_name, version):
    # given: the server pinned to a model that does not exist
    settings.MDS_SERVE_MODEL = "not_trained/7"

    # when
    pinned = invoke(api_client, csv_bytes(ROWS), "text/csv")
    named = invoke(api_client, csv_bytes(ROWS), "text/csv", f"?model_name={model_name}&version={version}")

    # then
    assert pinned.status_code == 404 and pinned.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert named.status_code == 200 and len(named.json()["predictions"]) == len(ROWS)


@pytest.mark.parametrize(
    "body, content_type, status, error_code, code",
    [
        (b"{not json", "application/json", 400, "BAD_REQUEST", "not_json"),
        (b'{"data": [[1, 2]]}', "application/json", 400, "BAD_REQUEST", "bad_json"),
        (b"a,b\n1,2\n", "text/csv", 400, "BAD_REQUEST", "invalid"),
        (b"x", "text/plain", 415, "BAD_REQUEST", "unsupported_media_type"),
        (b"{}", "application/json; charset=latin-1", 415, "BAD_REQUEST", "unsupported_media_type"),
        (b"{}", "application/json; format=pandas-split", 415, "BAD_REQUEST", "unsupported_media_type"),
    ],
)
def test_a_bad_request_is_an_mlflow_error(api_client, pinned, body, content_type, status, error_code, code):
    # when
    answer = invoke(api_client, body, content_type)

    # then
    assert answer.status_code == status
    assert answer.json()["error_code"] == error_code and answer.json()["message"]
    assert code == "invalid" or answer.json()["code"] == code


def test_without_a_token_invocations_is_refused_by_default(client, db, pinned):
    # when
    answer = invoke(client, csv_bytes(ROWS), "text/csv")

    # then
    assert answer.status_code == 401
    assert answer.json()["error_code"] == "UNAUTHENTICATED"


def test_anonymous_invocations_are_answered_by_the_pinned_model_logged_counted_and_throttled(
    db, settings, model_name, pinned
):
    # given: anonymous callers allowed, at most 3 requests a minute per address (refused ones count too)
    settings.MDS_INVOCATIONS_ANONYMOUS = True
    settings.MDS_THROTTLE_INVOCATIONS_ANONYMOUS = "3/minute"
    anonymous = APIClient()
    counted = predictions_counted(model_name)

    # when
    first = invoke(anonymous, csv_bytes(ROWS), "text/csv")
    another_model = invoke(anonymous, csv_bytes(ROWS), "text/csv", "?model_name=other")
    second = invoke(anonymous, csv_bytes(ROWS), "text/csv")
    third = invoke(anonymous, csv_bytes(ROWS), "text/csv")
    prediction_log_flush()

    # then
    assert first.status_code == 200 and len(first.json()["predictions"]) == len(ROWS)
    assert another_model.status_code == 403 and another_model.json()["error_code"] == "PERMISSION_DENIED"
    assert second.status_code == 200
    assert third.status_code == 429 and third.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    logged = PredictionLog.objects.get(request_id=first["X-Request-Id"])
    assert (logged.model_name, logged.model_version, logged.caller_id) == (model_name, pinned, None)
    assert predictions_counted(model_name) - counted == 2


def test_anonymous_needs_a_pinned_model(client, db, settings):
    # given: the setting without a pinned model (the system check refuses it; the server still asks for a token)
    settings.MDS_INVOCATIONS_ANONYMOUS = True
    settings.MDS_SERVE_MODEL = ""

    # when
    answer = invoke(client, csv_bytes(ROWS), "text/csv")

    # then
    assert answer.status_code == 401
    assert [error.id for error in served_model_check(None)] == ["mds.E102"]


def test_ping_and_version_answer_as_mlflow_models_serve(client, db):
    # when
    ping, version = client.get("/ping"), client.get("/version")

    # then
    assert (ping.status_code, ping.content) == (200, b"\n")
    assert (version.status_code, version.content.decode()) == (200, metadata.version("mlflow"))


@pytest.mark.parametrize(
    "setting, options",
    [
        ("", {}),
        ("rf_regressor", {"model_name": "rf_regressor"}),
        ("rf_regressor@champion", {"model_name": "rf_regressor", "version": "@champion"}),
        ("rf_regressor/3", {"model_name": "rf_regressor", "version": "3"}),
        ("rf_regressor/latest", {"model_name": "rf_regressor", "version": "latest"}),
    ],
)
def test_the_served_model_setting_reads_as_predicts_options(settings, setting, options):
    # given
    settings.MDS_SERVE_MODEL = setting

    # then
    assert served_model() == options
    assert served_model_check(None) == []


@pytest.mark.parametrize("setting", ["rf regressor", "rf_regressor@", "rf_regressor/3/4", "@champion"])
def test_a_served_model_setting_that_names_no_model_fails_the_system_check(settings, setting):
    # given
    settings.MDS_SERVE_MODEL = setting

    # then
    assert [error.id for error in served_model_check(None)] == ["mds.E101"]
