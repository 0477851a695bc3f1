"""The Open Inference Protocol spoken with Triton's own client (tritonclient, HTTP and gRPC) to a running inference
server: metadata, readiness, both input styles, binary data, intervals, errors and refusals, and the log and
metrics behind them."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from inference.trials.routing import routing_bucket
from tests.mds_project.test_inference_server import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = "rf_v2"
CALENDAR_MODEL = "rf_v2_calendar"
TRIAL_MODEL = "rf_v2_trial"
FEATURES = [
    "temperature_c",
    "humidity_pct",
    "wind_speed_ms",
    "pressure_hpa",
    "cloud_cover_pct",
    "precipitation_mm",
    "solar_radiation_kwh_m2",
    "day_of_week",
]
SETUP = textwrap.dedent(
    """
    import io, os
    from django.contrib.auth import get_user_model
    from core.tokens import token_create
    from sample_data.make_weather import make_weather
    from training import ml, services
    frame = make_weather(days=400, seed=3)
    user, _ = get_user_model().objects.get_or_create(username="v2-trainer")
    job = services.training_job_start(file=io.BytesIO(frame.to_csv(index=False).encode()), file_name="w.csv",
        user=user, model_name=os.environ["V2_MODEL"], target="target", timestamp="timestamp",
        params=ml.TrainingParams(n_estimators=10, max_depth=6))
    job = services.training_job_wait(job_id=job.pk, timeout=600)
    assert job.registered_version, (job.status, job.error_message)
    # A calendar version (the model derives hour, weekday, ... from the timestamp), small and without a backtest.
    calendar = services.training_job_start(file=io.BytesIO(frame.iloc[-120:].to_csv(index=False).encode()),
        file_name="w.csv", user=user, model_name=os.environ["V2_CALENDAR_MODEL"], target="target",
        timestamp="timestamp", params=ml.TrainingParams(n_estimators=10, max_depth=6, backtest=0, calendar=True))
    calendar = services.training_job_wait(job_id=calendar.pk, timeout=600)
    assert calendar.registered_version, (calendar.status, calendar.error_message)
    # A model on trial: its champion against a challenger trained on other rows, half the routing keys to each.
    from inference.trials.services import trial_start
    from registry_mirror.services import model_challenger_set
    versions = []
    for rows in (frame.iloc[:200], frame.iloc[200:]):
        trained = services.training_job_start(file=io.BytesIO(rows.to_csv(index=False).encode()), file_name="w.csv",
            user=user, model_name=os.environ["V2_TRIAL_MODEL"], target="target", timestamp="timestamp",
            params=ml.TrainingParams(n_estimators=5, max_depth=4, backtest=0))
        versions.append(services.training_job_wait(job_id=trained.pk, timeout=600).registered_version)
    model_challenger_set(name=os.environ["V2_TRIAL_MODEL"], version=versions[1], user=user)
    trial = trial_start(model_name=os.environ["V2_TRIAL_MODEL"], user=user, mode="canary", share=0.5, policy="manual")
    nobody, _ = get_user_model().objects.get_or_create(username="v2-no-role")
    print(job.registered_version, token_create(user=nobody)[1], calendar.registered_version, trial.pk, *versions)
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An inference server (HTTP and gRPC) on an embedded store holding one trained version of ``MODEL``, one of
    ``CALENDAR_MODEL`` (``calendar=true``) and two of ``TRIAL_MODEL``, in a canary trial."""
    data_dir = tmp_path_factory.mktemp("v2")
    (data_dir / "tmp").mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="mds_project.settings.local",
        DJANGO_DEBUG="false",
        MDS_DATA_DIR=str(data_dir),
        TMPDIR=str(data_dir / "tmp"),
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONPATH=str(ROOT),
        V2_MODEL=MODEL,
        V2_CALENDAR_MODEL=CALENDAR_MODEL,
        V2_TRIAL_MODEL=TRIAL_MODEL,
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    setup = subprocess.run(
        [*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    version, no_role_token, calendar_version, trial, champion, challenger = (
        setup.stdout.strip().splitlines()[-1].split()
    )
    token = subprocess.run(
        [*manage, "issue_token", "v2-client", "--role", "predictor"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    http_port, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "mds_project.inference_server", "--bind", f"127.0.0.1:{http_port}"]
    command += ["--grpc-bind", f"127.0.0.1:{grpc_port}"]
    log = data_dir / "server.log"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert process.poll() is None, log.read_text()
        yield {
            "http": f"127.0.0.1:{http_port}",
            "grpc": f"127.0.0.1:{grpc_port}",
            "version": version,
            "calendar_version": calendar_version,
            "trial": {"id": int(trial), "champion": champion, "challenger": challenger},
            "token": token,
            "no_role_token": no_role_token,
            "log": log,
        }
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def auth(server, key="token"):
    return {"authorization": f"Token {server[key]}"}


def rows(n=5):
    from sample_data.make_weather import make_weather

    return make_weather(days=n, seed=9)[FEATURES].to_numpy(dtype=np.float32)


@pytest.fixture(scope="module")
def expected(server):
    """What /predict answers for ``rows()`` with the ONNX engine."""
    body = ",".join(FEATURES) + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in rows())
    answer = requests.post(
        f"http://{server['http']}/predict?model_name={MODEL}&format=onnx",
        data=body,
        headers={"Content-Type": "text/csv", "Authorization": f"Token {server['token']}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return np.array(answer.json()["predictions"])


def test_http_client_reads_health_and_metadata(server):
    # given
    client = httpclient.InferenceServerClient(server["http"])

    # when
    live, ready = client.is_server_live(), client.is_server_ready()
    server_metadata = client.get_server_metadata()
    metadata = client.get_model_metadata(MODEL, headers=auth(server))
    model_ready = client.is_model_ready(MODEL, server["version"], headers=auth(server))
    other_ready = client.is_model_ready("no_such_model", headers=auth(server))

    # then
    assert live and ready and model_ready and not other_ready
    assert "binary_tensor_data" in server_metadata["extensions"]
    assert metadata["versions"] == [server["version"]]
    assert [tensor["name"] for tensor in metadata["inputs"]] == FEATURES
    assert metadata["outputs"][0]["name"] == "predictions"


@pytest.mark.parametrize("binary", [True, False])
def test_http_client_infers_with_one_matrix_or_a_tensor_per_feature(server, expected, binary):
    # given
    client = httpclient.InferenceServerClient(server["http"])
    X = rows()
    matrix = httpclient.InferInput("input", list(X.shape), "FP32")
    matrix.set_data_from_numpy(X, binary_data=binary)
    columns = []
    for j, name in enumerate(FEATURES):
        column = httpclient.InferInput(name, [len(X)], "FP64")
        column.set_data_from_numpy(X[:, j].astype(np.float64), binary_data=binary)
        columns.append(column)
    outputs = [httpclient.InferRequestedOutput("predictions", binary_data=binary)]

    # when
    answers = [
        client.infer(MODEL, inputs, outputs=outputs, headers=auth(server), parameters={"format": "onnx"})
        for inputs in ([matrix], columns)
    ]

    # then
    for answer in answers:
        np.testing.assert_allclose(answer.as_numpy("predictions"), expected, rtol=1e-6)
        assert answer.get_response()["model_version"] == server["version"]


def test_http_client_gets_interval_bounds_as_binary_outputs(server, expected):
    # given: no outputs named, so tritonclient asks for all of them as binary data
    client = httpclient.InferenceServerClient(server["http"])
    matrix = httpclient.InferInput("input", list(rows().shape), "FP32")
    matrix.set_data_from_numpy(rows())

    # when
    answer = client.infer(
        MODEL, [matrix], model_version="@champion", headers=auth(server), parameters={"interval": 0.9}
    )

    # then
    lower, upper = answer.as_numpy("lower"), answer.as_numpy("upper")
    assert lower.dtype == np.float64 and lower.shape == (5,)
    assert (lower < answer.as_numpy("predictions")).all() and (answer.as_numpy("predictions") < upper).all()


def test_a_canary_trial_routes_both_protocols_by_their_routing_key(server):
    # given: a routing key the trial sends to each version
    trial = server["trial"]
    keys = {routing_bucket(trial["id"], f"key:k{index}") < 0.5: f"k{index}" for index in range(40)}
    http, grpc = httpclient.InferenceServerClient(server["http"]), grpcclient.InferenceServerClient(server["grpc"])
    X = rows()

    def over_http(key, version=""):
        matrix = httpclient.InferInput("input", list(X.shape), "FP32")
        matrix.set_data_from_numpy(X)
        headers = {**auth(server), "x-routing-key": key}
        answer = http.infer(TRIAL_MODEL, [matrix], model_version=version, headers=headers).get_response()
        return answer["model_version"], answer["parameters"].get("trial")

    def over_grpc(key, version=""):
        matrix = grpcclient.InferInput("input", list(X.shape), "FP32")
        matrix.set_data_from_numpy(X)
        headers = {**auth(server), "x-routing-key": key}
        answer = grpc.infer(TRIAL_MODEL, [matrix], model_version=version, headers=headers).get_response()
        return answer.model_version, answer.parameters["trial"].int64_param if "trial" in answer.parameters else None

    # when
    answers = {
        infer.__name__: [infer(keys[True]), infer(keys[True]), infer(keys[False]), infer(keys[True], "1")]
        for infer in (over_http, over_grpc)
    }

    # then: each key stays on its side; a request naming a version is never routed
    on_trial = [(trial["challenger"], trial["id"])] * 2 + [(trial["champion"], trial["id"])]
    assert answers == {protocol: [*on_trial, ("1", None)] for protocol in ("over_http", "over_grpc")}


def test_http_client_errors_name_the_problem(server):
    # given
    client = httpclient.InferenceServerClient(server["http"])
    short = httpclient.InferInput("input", [1, 3], "FP32")
    short.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
    good = httpclient.InferInput("input", [1, 8], "FP32")
    good.set_data_from_numpy(np.ones((1, 8), dtype=np.float32))

    # when
    failures = {}
    for label, call in {
        "bad shape": lambda: client.infer(MODEL, [short], headers=auth(server)),
        "unknown model": lambda: client.infer("no_such_model", [good], headers=auth(server)),
        "no token": lambda: client.infer(MODEL, [good]),
        "no role": lambda: client.infer(MODEL, [good], headers=auth(server, "no_role_token")),
    }.items():
        with pytest.raises(InferenceServerException) as raised:
            call()
        failures[label] = raised.value

    # then
    assert "[N, 8]" in failures["bad shape"].message()
    assert "no_such_model" in failures["unknown model"].message()
    assert "token" in failures["no token"].message().lower()
    assert "role" in failures["no role"].message()
    statuses = {label: failure.status() for label, failure in failures.items()}
    assert statuses == {"bad shape": "400", "unknown model": "404", "no token": "401", "no role": "403"}


def test_grpc_client_infers_with_raw_contents_and_reads_metadata(server, expected):
    # given
    client = grpcclient.InferenceServerClient(server["grpc"])
    X = rows()
    matrix = grpcclient.InferInput("input", list(X.shape), "FP32")
    matrix.set_data_from_numpy(X)
    columns = []
    for j, name in enumerate(FEATURES):
        column = grpcclient.InferInput(name, [len(X)], "INT64" if name == "day_of_week" else "FP32")
        column.set_data_from_numpy(X[:, j].astype(np.int64 if name == "day_of_week" else np.float32))
        columns.append(column)

    # when
    live, ready = client.is_server_live(), client.is_server_ready()
    metadata = client.get_model_metadata(MODEL, headers=auth(server))
    model_ready = client.is_model_ready(MODEL, headers=auth(server))
    answers = [
        client.infer(MODEL, inputs, headers=auth(server), parameters={"format": "onnx"})
        for inputs in ([matrix], columns)
    ]
    interval = client.infer(
        MODEL, [matrix], model_version=server["version"], headers=auth(server), parameters={"interval": 0.8}
    )

    # then
    assert live and ready and model_ready
    assert [tensor.name for tensor in metadata.inputs] == FEATURES
    for answer in answers:
        np.testing.assert_allclose(answer.as_numpy("predictions"), expected, rtol=1e-6)
        assert answer.get_response().model_version == server["version"]
    assert (interval.as_numpy("lower") < interval.as_numpy("upper")).all()


def test_grpc_client_errors_carry_the_protocols_status(server):
    # given
    client = grpcclient.InferenceServerClient(server["grpc"])
    bad = grpcclient.InferInput("input", [1, 8], "FP64")
    bad.set_data_from_numpy(np.full((1, 8), np.inf))
    good = grpcclient.InferInput("input", [1, 8], "FP32")
    good.set_data_from_numpy(np.ones((1, 8), dtype=np.float32))

    # when
    failures = {}
    for label, call in {
        "not finite": lambda: client.infer(MODEL, [bad], headers=auth(server)),
        "unknown version": lambda: client.infer(MODEL, [good], model_version="999", headers=auth(server)),
        "no token": lambda: client.infer(MODEL, [good]),
        "no role": lambda: client.infer(MODEL, [good], headers=auth(server, "no_role_token")),
    }.items():
        with pytest.raises(InferenceServerException) as raised:
            call()
        failures[label] = raised.value

    # then
    assert failures["not finite"].status() == "StatusCode.INVALID_ARGUMENT"
    assert "element [0, 0]" in failures["not finite"].message()
    assert failures["unknown version"].status() == "StatusCode.NOT_FOUND"
    assert failures["no token"].status() == "StatusCode.UNAUTHENTICATED"
    assert failures["no role"].status() == "StatusCode.PERMISSION_DENIED"


def test_grpc_and_rest_answers_are_logged_take_feedback_and_are_counted_by_protocol(server):
    # given
    client = grpcclient.InferenceServerClient(server["grpc"])
    matrix = grpcclient.InferInput("input", [2, 8], "FP32")
    matrix.set_data_from_numpy(rows(2))
    base = f"http://{server['http']}"
    headers = {"Authorization": f"Token {server['token']}"}

    rest = httpclient.InferenceServerClient(server["http"])
    rest_matrix = httpclient.InferInput("input", [2, 8], "FP32")
    rest_matrix.set_data_from_numpy(rows(2))

    # when
    request_id = client.infer(MODEL, [matrix], headers=auth(server)).get_response().id
    rest.infer(MODEL, [rest_matrix], headers=auth(server))
    predicted = requests.post(
        f"{base}/predict?model_name={MODEL}",
        data=",".join(FEATURES) + "\n" + ",".join(["1"] * 8) + "\n",
        headers={**headers, "Content-Type": "text/csv"},
        timeout=30,
    )
    feedback, deadline = None, time.monotonic() + 30
    # The log is written in the background: the prediction is there once feedback for it is not a 404.
    while feedback is None or (feedback.status_code == 404 and time.monotonic() < deadline):
        if feedback is not None:
            time.sleep(0.2)
        feedback = requests.post(
            f"{base}/feedback", json={"request_id": request_id, "actuals": [1.0, 2.0]}, headers=headers, timeout=30
        )
    metrics = requests.get(f"{base}/metrics", timeout=30).text

    # then
    assert feedback.status_code == 200, feedback.text
    assert predicted.status_code == 200, predicted.text
    counted = [line for line in metrics.splitlines() if line.startswith("mds_predictions_total{")]
    assert any('protocol="v2-grpc"' in line and 'status="200"' in line for line in counted), counted
    assert any('protocol="v2-rest"' in line for line in counted), counted
    assert any('protocol="mds"' in line for line in counted), counted


def test_a_calendar_version_takes_its_timestamp_as_bytes_from_both_clients(server):
    # given: rows with times of day in several formats, and what /predict answers for them as CSV
    from sample_data.make_weather import make_weather

    frame = make_weather(days=4, seed=9)
    frame["timestamp"] = ["2024-03-01T03:00:00Z", "2024-03-02 15:30", "2024-07-14T23:00:00+02:00", "2025-01-01"]
    X = frame[FEATURES].to_numpy(dtype=np.float32)
    stamps = np.array(list(frame["timestamp"]), dtype=object)
    predicted = requests.post(
        f"http://{server['http']}/predict?model_name={CALENDAR_MODEL}&format=onnx",
        data=frame.drop(columns=["target"]).to_csv(index=False),
        headers={"Content-Type": "text/csv", "Authorization": f"Token {server['token']}"},
        timeout=60,
    )
    assert predicted.status_code == 200, predicted.text
    expected = np.array(predicted.json()["predictions"])
    rest = httpclient.InferenceServerClient(server["http"])
    grpc = grpcclient.InferenceServerClient(server["grpc"])
    answers = []

    # when: over REST, the timestamp as JSON strings and as binary data; over gRPC, as raw contents
    for binary in (False, True):
        matrix = httpclient.InferInput("input", list(X.shape), "FP32")
        matrix.set_data_from_numpy(X, binary_data=binary)
        timestamp = httpclient.InferInput("timestamp", [len(stamps)], "BYTES")
        timestamp.set_data_from_numpy(stamps, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput("predictions", binary_data=binary)]
        answer = rest.infer(
            CALENDAR_MODEL, [matrix, timestamp], outputs=outputs, headers=auth(server), parameters={"format": "onnx"}
        )
        answers.append(answer.as_numpy("predictions"))
    matrix = grpcclient.InferInput("input", list(X.shape), "FP32")
    matrix.set_data_from_numpy(X)
    timestamp = grpcclient.InferInput("timestamp", [len(stamps)], "BYTES")
    timestamp.set_data_from_numpy(stamps)
    answers.append(
        grpc.infer(CALENDAR_MODEL, [matrix, timestamp], headers=auth(server), parameters={"format": "onnx"}).as_numpy(
            "predictions"
        )
    )
    metadata = grpc.get_model_metadata(CALENDAR_MODEL, headers=auth(server))
    with pytest.raises(InferenceServerException) as missing:
        rest.infer(CALENDAR_MODEL, [matrix_input(X)], headers=auth(server))

    # then: every door gives /predict's predictions; the metadata asks for the timestamp, not what it derives
    for answer in answers:
        np.testing.assert_allclose(answer, expected, rtol=1e-6)
    assert [(tensor.name, tensor.datatype) for tensor in metadata.inputs] == [
        *((name, "FP32") for name in FEATURES),
        ("timestamp", "BYTES"),
    ]
    assert missing.value.status() == "400" and "'timestamp'" in missing.value.message()


def matrix_input(X):
    matrix = httpclient.InferInput("input", list(X.shape), "FP32")
    matrix.set_data_from_numpy(X)
    return matrix


TYPED_CONTENTS_CLIENT = textwrap.dedent(
    """
    import json
    import sys
    import grpc
    import numpy as np
    from inference.v2.proto import open_inference_pb2 as pb, open_inference_pb2_grpc as pb_grpc

    target, token, features, model, calendar_model = sys.argv[1], sys.argv[2], sys.argv[3].split(","), *sys.argv[4:6]
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
    Tensor = pb.ModelInferRequest.InferInputTensor
    inputs = [
        Tensor(name=name, datatype="INT64", shape=[2], contents=pb.InferTensorContents(int64_contents=[3, 4]))
        if name == "day_of_week"
        else Tensor(name=name, datatype="FP32", shape=[2], contents=pb.InferTensorContents(fp32_contents=[1.5, 2.5]))
        for name in features
    ]
    request = pb.ModelInferRequest(model_name=model, inputs=inputs, id="typed-1")
    answer = stub.ModelInfer(request, metadata=(("authorization", "Bearer " + token),))
    values = np.frombuffer(answer.raw_output_contents[0], dtype="<f8")
    print(answer.outputs[0].name, list(answer.outputs[0].shape), answer.parameters["client_request_id"].string_param)
    print(json.dumps(values.tolist()))
    # A calendar version's timestamp in bytes_contents.
    stamps = pb.InferTensorContents(bytes_contents=[b"2024-03-01T03:00:00Z", b"2024-07-14 15:00"])
    inputs.append(Tensor(name="timestamp", datatype="BYTES", shape=[2], contents=stamps))
    request = pb.ModelInferRequest(model_name=calendar_model, inputs=inputs)
    answer = stub.ModelInfer(request, metadata=(("authorization", "Bearer " + token),))
    print(json.dumps(np.frombuffer(answer.raw_output_contents[0], dtype="<f8").tolist()))
    """
)


def test_grpc_typed_contents_with_the_servers_own_stubs(server):
    # given: the stubs generated from the protocol's definition, in a process of their own (tritonclient's stubs,
    # loaded in this one, declare the same protobuf names)
    X = np.array([[1.5] * 7 + [3], [2.5] * 7 + [4]], dtype=np.float32)
    body = ",".join(FEATURES) + "\n" + "\n".join(",".join(str(v) for v in row) for row in X)
    stamps = ["2024-03-01T03:00:00Z", "2024-07-14 15:00"]
    calendar_body = ",".join([*FEATURES, "timestamp"]) + "\n"
    calendar_body += "\n".join(",".join([*(str(v) for v in row), stamp]) for row, stamp in zip(X, stamps, strict=True))
    expected, calendar_expected = (
        requests.post(
            f"http://{server['http']}/predict?model_name={model}",
            data=data,
            headers={"Content-Type": "text/csv", "Authorization": f"Token {server['token']}"},
            timeout=60,
        ).json()["predictions"]
        for model, data in ((MODEL, body), (CALENDAR_MODEL, calendar_body))
    )

    # when
    out = subprocess.run(
        [sys.executable, "-c", TYPED_CONTENTS_CLIENT, server["grpc"], server["token"], ",".join(FEATURES)]
        + [MODEL, CALENDAR_MODEL],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    # then
    assert out.returncode == 0, out.stderr
    header, values, calendar_values = out.stdout.strip().splitlines()
    assert header == "predictions [2] typed-1"
    np.testing.assert_allclose(json.loads(values), expected, rtol=1e-5)
    np.testing.assert_allclose(json.loads(calendar_values), calendar_expected, rtol=1e-5)
