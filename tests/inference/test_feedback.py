"""The prediction log and feedback: request ids, logged answers, actuals, live performance, retention."""

import json
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from django.utils import timezone
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from inference.models import PredictionLog
from inference.monitoring import prediction_log_prune
from inference.prediction_log import (
    LoggedPrediction,
    PredictionLogWriter,
    prediction_log_flush,
    prediction_log_submit,
)
from tests.conftest import token_client
from tests.factories import UserFactory, csv_bytes, weather_frame

FEATURES = list(weather_frame(1).columns[1:-1])


@pytest.fixture
def version(train):
    return train()["registered_version"]


def predict(api_client, model_name, frame, **headers):
    return api_client.generic(
        "POST", f"/predict?model_name={model_name}", csv_bytes(frame), content_type="text/csv", **headers
    )


def feedback(api_client, request_id, actuals):
    return api_client.post("/feedback", {"request_id": request_id, "actuals": actuals}, format="json")


def test_every_answer_carries_a_request_id_and_is_logged(api_client, model_name, version):
    # given
    rows = weather_frame(4)

    # when
    answer = predict(api_client, model_name, rows)
    as_csv = predict(api_client, model_name, rows, HTTP_ACCEPT="text/csv")
    refused = api_client.generic("POST", f"/predict?model_name={model_name}", b"x\n1\n", content_type="text/csv")
    written = prediction_log_flush()

    # then
    assert answer.status_code == 200
    assert answer["X-Request-Id"] == answer.json()["request_id"]
    assert as_csv["X-Request-Id"] and refused["X-Request-Id"]
    assert len({answer["X-Request-Id"], as_csv["X-Request-Id"], refused["X-Request-Id"]}) == 3
    assert written == 2
    log = PredictionLog.objects.get(request_id=answer["X-Request-Id"])
    assert (log.model_name, log.model_version, log.engine, log.n_rows) == (model_name, version, "onnx", 4)
    assert log.feature_names == FEATURES
    inputs = np.frombuffer(log.inputs, dtype="<f4").reshape(4, len(FEATURES))
    np.testing.assert_array_equal(inputs, rows[FEATURES].to_numpy(dtype=np.float32))
    assert np.frombuffer(log.predictions, dtype="<f8").tolist() == answer.json()["predictions"]


def test_request_ids_are_the_servers_own_and_a_clients_is_kept_beside(api_client, user, model_name, version):
    # given: a client that chooses its ids (another user's, say), and one sending a long one
    chosen = str(uuid.uuid4())

    # when
    first = predict(api_client, model_name, weather_frame(1), HTTP_X_REQUEST_ID=chosen)
    reused = predict(api_client, model_name, weather_frame(2), HTTP_X_REQUEST_ID=chosen)
    long = predict(api_client, model_name, weather_frame(1), HTTP_X_REQUEST_ID="trace-" + "x" * 500)
    prediction_log_flush()

    # then: the key is always fresh; the client's id is echoed and logged beside it, bounded
    ids = [answer["X-Request-Id"] for answer in (first, reused, long)]
    assert chosen not in ids and len(set(ids)) == 3 and all(uuid.UUID(value) for value in ids)
    assert first["X-Client-Request-Id"] == first.json()["client_request_id"] == chosen
    assert not PredictionLog.objects.filter(request_id=chosen).exists()
    logs = PredictionLog.objects.filter(client_request_id=chosen).order_by("n_rows")
    assert [(str(log.request_id), log.n_rows, log.caller) for log in logs] == [(ids[0], 1, user), (ids[1], 2, user)]
    assert long["X-Client-Request-Id"] == ("trace-" + "x" * 500)[:128]
    assert PredictionLog.objects.get(request_id=ids[2]).client_request_id == long["X-Client-Request-Id"]


def test_feedback_for_another_users_prediction_is_404_and_leaves_it_to_its_caller(
    api_client, role_client, model_name, version
):
    # given: a prediction of the trainer's, and another predictor who learned its request id
    answer = predict(api_client, model_name, weather_frame(3)).json()
    prediction_log_flush()
    other = role_client("predictor")

    # when
    poisoned = feedback(other, answer["request_id"], [0, 0, 0])
    unknown = feedback(other, str(uuid.uuid4()), [0, 0, 0])
    own = feedback(api_client, answer["request_id"], [1, 2, 3])

    # then: the same answer as for an id nobody has, nothing recorded, and the caller's actuals accepted
    assert (poisoned.status_code, poisoned.json()["code"]) == (404, "unknown_request_id")
    assert poisoned.json()["message"].replace(answer["request_id"], "ID") == unknown.json()["message"].replace(
        unknown.json()["extra"]["request_id"], "ID"
    )
    assert own.status_code == 200
    assert np.frombuffer(PredictionLog.objects.get(request_id=answer["request_id"]).actuals).tolist() == [1, 2, 3]


def test_a_maintainer_may_send_the_actuals_of_anyones_prediction(api_client, role_client, model_name, version):
    # given
    answer = predict(api_client, model_name, weather_frame(2)).json()
    prediction_log_flush()

    # when
    sent = feedback(role_client("maintainer"), answer["request_id"], [4, 5])

    # then
    assert sent.status_code == 200 and sent.json()["n"] == 2


def test_live_mae_from_feedback_equals_the_mae_of_the_same_actuals(api_client, model_name, version, train):
    # given: three answered requests of different sizes, and their actuals
    frames = [weather_frame(30, seed=seed) for seed in (21, 22, 23)]
    answers = [predict(api_client, model_name, frame).json() for frame in frames]
    prediction_log_flush()

    # when: actuals as JSON for two requests and as a CSV for the third
    for answer, frame in zip(answers[:2], frames[:2], strict=True):
        assert feedback(api_client, answer["request_id"], frame["target"].tolist()).status_code == 200
    as_csv = api_client.generic(
        "POST",
        f"/feedback?request_id={answers[2]['request_id']}",
        csv_bytes(frames[2][["timestamp", "target"]]),
        content_type="text/csv",
    )
    performance = api_client.get(f"/models/{model_name}/versions/{version}/performance")

    # then
    assert as_csv.status_code == 200, as_csv.json()
    actuals = np.concatenate([frame["target"].to_numpy() for frame in frames])
    predictions = np.concatenate([answer["predictions"] for answer in answers])
    live = performance.json()["live"]
    assert live["n"] == 90 and live["requests"] == 3
    assert live["mae"] == pytest.approx(mean_absolute_error(actuals, predictions), rel=1e-12)
    assert live["rmse"] == pytest.approx(np.sqrt(mean_squared_error(actuals, predictions)), rel=1e-12)
    assert live["r2"] == pytest.approx(r2_score(actuals, predictions), rel=1e-9)
    assert live["interval_coverage"] == []
    job = api_client.get("/train").json()["results"][0]
    holdout = performance.json()["holdout"]
    assert holdout["mae"] == pytest.approx(job["metrics"]["mae"])
    assert holdout["r2"] == pytest.approx(job["metrics"]["r2"])


def test_performance_counts_only_predictions_of_the_window(api_client, model_name, version):
    # given: one request with actuals yesterday, one today
    old, new = (predict(api_client, model_name, weather_frame(3, seed=seed)).json() for seed in (1, 2))
    prediction_log_flush()
    for answer in (old, new):
        feedback(api_client, answer["request_id"], [1.0, 2.0, 3.0])
    PredictionLog.objects.filter(request_id=old["request_id"]).update(predicted_at=timezone.now() - timedelta(days=1))
    since = (timezone.now() - timedelta(hours=1)).isoformat()

    # when
    windowed = api_client.get(f"/models/{model_name}/versions/{version}/performance", {"since": since})
    bad_since = api_client.get(f"/models/{model_name}/versions/{version}/performance?since=yesterday")

    # then
    assert windowed.json()["live"]["requests"] == 1
    assert bad_since.status_code == 400 and bad_since.json()["extra"] == {"field": "since"}


def test_feedback_is_checked_and_recorded_once(api_client, model_name, version):
    # given
    answer = predict(api_client, model_name, weather_frame(3)).json()
    prediction_log_flush()
    request_id = answer["request_id"]

    # when
    unknown = feedback(api_client, str(uuid.uuid4()), [1, 2, 3])
    malformed_id = feedback(api_client, "nope", [1, 2, 3])
    too_few = feedback(api_client, request_id, [1, 2])
    not_a_number = feedback(api_client, request_id, [1, "wet", 3])
    first = feedback(api_client, request_id, [1, 2, 3])
    again = feedback(api_client, request_id, [1, 2, 3])
    other = feedback(api_client, request_id, [1, 2, 4])

    # then
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_request_id")
    assert (malformed_id.status_code, malformed_id.json()["code"]) == (400, "invalid_request_id")
    assert too_few.status_code == 400 and too_few.json()["extra"] == {"rows": 3, "actuals": 2}
    assert not_a_number.status_code == 400 and not_a_number.json()["extra"] == {"column": "actual", "row": 2}
    assert first.status_code == again.status_code == 200
    assert (other.status_code, other.json()["code"]) == (409, "feedback_exists")
    assert np.frombuffer(PredictionLog.objects.get(request_id=request_id).actuals).tolist() == [1, 2, 3]


def test_interval_bounds_are_stored_and_coverage_measured(api_client, user, model_name, version):
    # given: two logged answers of the user's with 90 % intervals, as /predict?interval=0.9 answers them
    X = weather_frame(4)[FEATURES].to_numpy(dtype=np.float32)
    ids = [uuid.uuid4(), uuid.uuid4()]
    for request_id in ids:
        prediction_log_submit(
            request_id=request_id,
            model_name=model_name,
            model_version=version,
            engine="onnx",
            feature_names=FEATURES,
            inputs=X,
            predictions=np.array([10.0, 20.0, 30.0, 40.0]),
            intervals=SimpleNamespace(level=0.9, lower=[5.0, 15.0, 25.0, 35.0], upper=[15.0, 25.0, 35.0, 45.0]),
            caller_id=user.pk,
        )
    prediction_log_flush()

    # when: 3 of 4 actuals inside their interval, then 4 of 4
    feedback(api_client, str(ids[0]), [11, 19, 36, 40])
    feedback(api_client, str(ids[1]), [10, 20, 30, 40])
    live = api_client.get(f"/models/{model_name}/versions/{version}/performance").json()["live"]

    # then
    assert live["interval_coverage"] == [{"level": 0.9, "n": 8, "coverage": 7 / 8}]


def test_an_unknown_version_has_no_performance(api_client, model_name, version):
    # when
    response = api_client.get(f"/models/{model_name}/versions/{version + 5}/performance")

    # then
    assert response.status_code == 404


def test_a_full_queue_drops_and_counts_and_never_raises(db):
    # given
    writer = PredictionLogWriter(max_entries=2, max_bytes=10**6, batch_size=10, interval=1, background=False)
    entries = [_entry() for _ in range(3)]

    # when
    accepted = [writer.submit(entry) for entry in entries]

    # then
    assert accepted == [True, True, False]
    assert writer.dropped == 1
    assert writer.flush() == 2


def test_a_batch_the_database_refuses_is_dropped_and_counted(db):
    # given: an entry that cannot be written (its column names are not JSON)
    writer = PredictionLogWriter(max_entries=10, max_bytes=10**6, batch_size=10, interval=1, background=False)
    writer.submit(_entry(feature_names=[object()]))

    # when
    written = writer.flush()

    # then
    assert written == 0 and writer.dropped == 1
    assert writer.pending() == 0


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_writes_the_log_without_being_asked():
    # given
    writer = PredictionLogWriter(max_entries=10, max_bytes=10**6, batch_size=10, interval=0.05, background=True)
    entry = _entry()

    # when
    writer.submit(entry)
    deadline = time.monotonic() + 10
    while not PredictionLog.objects.filter(request_id=entry.request_id).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop()

    # then
    assert PredictionLog.objects.filter(request_id=entry.request_id).exists()


def test_logged_predictions_expire_after_the_retention(db, settings):
    # given
    settings.MDS_PREDICTION_LOG_DAYS = 7
    writer = PredictionLogWriter(max_entries=10, max_bytes=10**6, batch_size=10, interval=1, background=False)
    old, recent = _entry(), _entry()
    writer.submit(old)
    writer.submit(recent)
    writer.flush()
    PredictionLog.objects.filter(request_id=old.request_id).update(predicted_at=timezone.now() - timedelta(days=8))

    # when
    deleted = prediction_log_prune()

    # then
    assert deleted == 1
    assert list(PredictionLog.objects.values_list("request_id", flat=True)) == [recent.request_id]


def test_logging_can_be_switched_off(api_client, model_name, version, settings):
    # given
    settings.MDS_PREDICTION_LOG = False

    # when
    answer = predict(api_client, model_name, weather_frame(2))

    # then
    assert answer.status_code == 200 and answer.json()["request_id"]
    assert prediction_log_flush() == 0


def _entry(**overrides) -> LoggedPrediction:
    fields = {
        "request_id": uuid.uuid4(),
        "predicted_at": timezone.now(),
        "model_name": "m",
        "model_version": 1,
        "engine": "onnx",
        "feature_names": ["a", "b"],
        "inputs": np.ones((2, 2), dtype=np.float32),
        "predictions": np.array([1.0, 2.0]),
        **overrides,
    }
    return LoggedPrediction(**fields)


def test_feedback_json_without_actuals_is_a_400(api_client, db):
    # when
    response = api_client.post("/feedback", json.dumps({"request_id": "x"}), content_type="application/json")

    # then
    assert (response.status_code, response.json()["code"]) == (400, "no_input")


def test_feedback_and_performance_follow_the_roles(role_client, db):
    # given: a user without a role, and a predictor
    nobody = token_client(UserFactory())
    predictor = role_client("predictor")
    body = {"request_id": str(uuid.uuid4()), "actuals": [1]}

    # when
    refused = nobody.post("/feedback", body, format="json")
    refused_read = nobody.get("/models/m/versions/1/performance")
    allowed = predictor.post("/feedback", body, format="json")
    read = predictor.get("/models/m/versions/1/performance")

    # then
    assert refused.status_code == refused_read.status_code == 403
    assert allowed.status_code == read.status_code == 404
