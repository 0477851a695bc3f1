"""The Open Inference Protocol over REST, in process: the same answers, rules and log as /predict."""

import json

import numpy as np
import pytest

from core.calendar import CALENDAR_FEATURES
from inference.models import PredictionLog
from inference.prediction_log import prediction_log_flush
from tests.factories import csv_bytes, weather_frame

FEATURES = list(weather_frame(1).columns[1:-1])


@pytest.fixture
def version(train):
    return train()["registered_version"]


def infer(client, model_name, body, version=None, **headers):
    url = f"/v2/models/{model_name}" + (f"/versions/{version}" if version else "") + "/infer"
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.generic("POST", url, data, content_type="application/json", **headers)


def matrix_request(frame, datatype="FP64", **extra):
    values = frame[FEATURES].to_numpy()
    return {
        "inputs": [{"name": "input", "shape": list(values.shape), "datatype": datatype, "data": values.tolist()}],
        **extra,
    }


def column_request(frame):
    return {
        "inputs": [
            {"name": name, "shape": [len(frame)], "datatype": "FP32", "data": frame[name].tolist()}
            for name in FEATURES
        ]
    }


def predict_csv(client, model_name, frame, version):
    answer = client.generic(
        "POST", f"/predict?model_name={model_name}&version={version}&format=onnx", csv_bytes(frame), "text/csv"
    )
    assert answer.status_code == 200, answer.content
    return answer.json()["predictions"]


def test_both_input_styles_answer_what_predict_answers(api_client, model_name, version):
    # given
    frame = weather_frame(4)
    expected = predict_csv(api_client, model_name, frame, version)

    # when
    as_matrix = infer(api_client, model_name, matrix_request(frame, parameters={"format": "onnx"}), version)
    by_column = infer(api_client, model_name, {**column_request(frame), "parameters": {"format": "onnx"}})

    # then
    for answer in (as_matrix, by_column):
        assert answer.status_code == 200, answer.content
        body = answer.json()
        assert body["model_name"] == model_name and body["model_version"] == str(version)
        assert body["id"] == answer["X-Request-Id"]
        [output] = body["outputs"]
        assert output["name"] == "predictions" and output["datatype"] == "FP64" and output["shape"] == [4]
        np.testing.assert_allclose(output["data"], expected, rtol=1e-6)


def test_metadata_names_the_signatures_features_and_readiness_loads_the_champion(api_client, model_name, version):
    # when
    metadata = api_client.get(f"/v2/models/{model_name}")
    ready = api_client.get(f"/v2/models/{model_name}/versions/@champion/ready")
    server = api_client.get("/v2")

    # then
    assert metadata.status_code == 200, metadata.content
    assert metadata.json()["versions"] == [str(version)]
    assert [tensor["name"] for tensor in metadata.json()["inputs"]] == FEATURES
    assert metadata.json()["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert server.json()["extensions"] == ["binary_tensor_data"]


def test_binary_inputs_and_outputs_with_an_interval(api_client, model_name, version):
    # given: the matrix as raw float32 after the JSON, and the bounds asked for as binary data
    frame = weather_frame(3)
    raw = np.ascontiguousarray(frame[FEATURES].to_numpy(), dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [3, 8], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
            ],
            "outputs": [{"name": "predictions"}, {"name": "lower", "parameters": {"binary_data": True}}],
            "parameters": {"interval": 0.9},
        }
    ).encode()

    # when
    answer = infer(
        api_client, model_name, header + raw, version, HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(len(header))
    )

    # then
    assert answer.status_code == 200, answer.content
    size = int(answer["Inference-Header-Content-Length"])
    body = json.loads(answer.content[:size])
    predictions, lower = body["outputs"]
    assert lower["parameters"]["binary_data_size"] == 3 * 8
    bounds = np.frombuffer(answer.content[size:], dtype="<f8")
    assert (bounds < np.array(predictions["data"])).all()


@pytest.mark.parametrize(
    "body, status, named",
    [
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, 400, "'x'"),
        ({"inputs": [{"name": FEATURES[0], "shape": [1], "datatype": "FP32", "data": [1]}]}, 400, FEATURES[1]),
        ({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "BYTES", "data": ["a"] * 8}]}, 400, "BYTES"),
        ({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": [1] * 7}]}, 400, "7 elements"),
        ({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP64", "data": [1e39] * 8}]}, 400, "element [0, 0]"),
        ({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": ["hot"] * 8}]}, 400, "'hot'"),
        ({"inputs": []}, 400, "inputs"),
    ],
)
def test_bad_inputs_are_400_naming_the_tensor_or_feature(api_client, model_name, version, body, status, named):
    # when
    answer = infer(api_client, model_name, body)

    # then
    assert answer.status_code == status, answer.content
    assert named in answer.json()["error"]


def test_errors_in_the_protocols_shape(api_client, client, model_name, version, role_client):
    # when
    unknown_model = infer(api_client, "no_such_model_anywhere", matrix_request(weather_frame(1)))
    unknown_version = api_client.get(f"/v2/models/{model_name}/versions/999/ready")
    anonymous = infer(client, model_name, matrix_request(weather_frame(1)))
    bearer = infer(client, model_name, matrix_request(weather_frame(1)), HTTP_AUTHORIZATION="Bearer nope")
    not_json = infer(api_client, model_name, b"{")
    no_route = api_client.get("/v2/nothing/here")

    # then
    assert unknown_model.status_code == unknown_version.status_code == no_route.status_code == 404
    assert anonymous.status_code == bearer.status_code == 401
    assert not_json.status_code == 400
    for answer in (unknown_model, unknown_version, anonymous, bearer, not_json, no_route):
        assert set(answer.json()) == {"error", "code"}, answer.json()


def test_the_answer_is_logged_under_its_id_and_takes_feedback(api_client, model_name, version, settings):
    # given
    frame = weather_frame(2)

    # when
    answer = infer(api_client, model_name, {**matrix_request(frame), "id": "client-7"})
    prediction_log_flush()
    feedback = api_client.post("/feedback", {"request_id": answer.json()["id"], "actuals": [1.0, 2.0]}, format="json")

    # then
    logged = PredictionLog.objects.get(request_id=answer.json()["id"])
    assert logged.client_request_id == "client-7" and logged.n_rows == 2
    assert answer.json()["parameters"]["client_request_id"] == "client-7"
    assert feedback.status_code == 200, feedback.content


def test_throttled_requests_are_429_with_retry_after(api_client, model_name, version, settings):
    # given: /predict's throttle, which counts V2 requests too
    settings.MDS_THROTTLE_PREDICT = "2/minute"
    body = matrix_request(weather_frame(1))

    # when
    answers = [infer(api_client, model_name, body) for _ in range(3)]

    # then
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) > 0
    assert set(answers[2].json()) == {"error", "code"}


def test_a_database_fault_is_503_with_retry_after():
    # given
    from django.db import OperationalError

    from inference.v2.errors import protocol_error

    # when
    error = protocol_error(OperationalError("server closed the connection unexpectedly"))

    # then
    assert error.status == 503 and error.retry_after and error.body()["code"] == "database_unavailable"


def length_prefixed(texts):
    """BYTES as the binary tensor data extension carries them: each element's 4-byte little-endian length first."""
    return b"".join(len(text.encode()).to_bytes(4, "little") + text.encode() for text in texts)


@pytest.fixture
def calendar_version(train):
    job = train(calendar="true", backtest=0)
    assert job["status"] == "success", job["error"]
    return job["registered_version"]


def calendar_rows():
    # Times of day, offsets and formats /predict reads alike, so the hour and weekday columns vary.
    frame = weather_frame(4, seed=5)
    frame["timestamp"] = ["2024-03-01T03:00:00Z", "2024-03-02 15:30", "2024-07-14T23:00:00+02:00", "2025-01-01"]
    return frame


def test_a_calendar_version_takes_the_timestamp_as_bytes_and_answers_what_predict_answers(
    api_client, model_name, calendar_version
):
    # given: the same rows through /predict (CSV with the timestamp column), per engine, with intervals
    frame = calendar_rows()
    stamps = list(frame["timestamp"])
    expected = {}
    for engine in ("onnx", "sklearn"):
        answer = api_client.generic(
            "POST", f"/predict?model_name={model_name}&format={engine}&interval=0.9", csv_bytes(frame), "text/csv"
        )
        assert answer.status_code == 200, answer.content
        expected[engine] = answer.json()
    by_column = {
        "inputs": [
            *column_request(frame)["inputs"],
            {"name": "timestamp", "shape": [4], "datatype": "BYTES", "data": stamps},
        ]
    }
    raw_stamps = length_prefixed(stamps)
    header = json.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [4, 8], "datatype": "FP64", "data": frame[FEATURES].to_numpy().tolist()},
                {
                    "name": "timestamp",
                    "shape": [4, 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw_stamps)},
                },
            ],
        }
    )

    # when
    metadata = api_client.get(f"/v2/models/{model_name}/versions/{calendar_version}")
    answers = {}
    for engine in ("onnx", "sklearn"):
        parameters = {"format": engine, "interval": 0.9}
        as_json = infer(api_client, model_name, {**by_column, "parameters": parameters})
        binary_header = json.dumps({**json.loads(header), "parameters": parameters}).encode()
        as_binary = infer(
            api_client,
            model_name,
            binary_header + raw_stamps,
            calendar_version,
            HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(len(binary_header)),
        )
        answers[engine] = (as_json, as_binary)

    # then: the metadata names the timestamp, not the derived features; every answer is /predict's
    assert metadata.status_code == 200, metadata.content
    assert metadata.json()["inputs"] == [
        *({"name": name, "datatype": "FP32", "shape": [-1]} for name in FEATURES),
        {"name": "timestamp", "datatype": "BYTES", "shape": [-1]},
    ]
    for engine, pair in answers.items():
        for answer in pair:
            assert answer.status_code == 200, answer.content
            outputs = {output["name"]: output["data"] for output in answer.json()["outputs"]}
            assert answer.json()["parameters"]["engine"] == engine
            np.testing.assert_allclose(outputs["predictions"], expected[engine]["predictions"], rtol=1e-6)
            np.testing.assert_allclose(outputs["lower"], expected[engine]["intervals"]["lower"], rtol=1e-6)
            np.testing.assert_allclose(outputs["upper"], expected[engine]["intervals"]["upper"], rtol=1e-6)
    assert len(set(answers["sklearn"][0].json()["outputs"][0]["data"])) > 1


def test_a_calendar_version_refuses_a_missing_or_bad_timestamp_and_calendar_features_sent(
    api_client, model_name, calendar_version
):
    # given
    frame = calendar_rows()
    columns = column_request(frame)["inputs"]
    calendar = [{"name": name, "shape": [4], "datatype": "FP32", "data": [0.5] * 4} for name in CALENDAR_FEATURES]
    bad = {"name": "timestamp", "shape": [4], "datatype": "BYTES", "data": ["2024-01-01", "2024-01-02", "soon", "x"]}
    numeric_bytes = [
        {**columns[0], "datatype": "BYTES", "data": ["1"] * 4},
        *columns[1:],
        {**bad, "data": ["2024"] * 4},
    ]

    # when
    missing = infer(api_client, model_name, {"inputs": columns})
    derived = infer(api_client, model_name, {"inputs": columns + calendar})
    bad_stamp = infer(api_client, model_name, {"inputs": [*columns, bad]})
    bytes_feature = infer(api_client, model_name, {"inputs": numeric_bytes})

    # then
    assert missing.status_code == 400 and missing.json()["code"] == "missing_columns", missing.content
    assert "'timestamp'" in missing.json()["error"] and "BYTES" in missing.json()["error"]
    assert derived.status_code == 400 and derived.json()["code"] == "calendar_features_sent", derived.content
    assert "send the tensor 'timestamp'" in derived.json()["error"]
    assert bad_stamp.status_code == 400 and bad_stamp.json()["code"] == "bad_timestamp", bad_stamp.content
    assert "Tensor 'timestamp', element [2]: 'soon'" in bad_stamp.json()["error"]
    assert bytes_feature.status_code == 400 and "datatype 'BYTES' is not accepted" in bytes_feature.json()["error"]
