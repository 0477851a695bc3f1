"""/train's time-series options end to end in embedded mode: backtest, estimator choice, calendar features, and
what /predict answers for the versions they make."""

import numpy as np
import pytest

from core import contract
from core.calendar import CALENDAR_FEATURES
from registry_mirror import gateway
from tests.factories import csv_bytes, weather_frame
from training.models import Dataset, TrainingJob

FEATURES = list(weather_frame(1).columns[1:-1])


def predict(api_client, model_name, rows, **query):
    url = "/predict?" + "&".join(f"{key}={value}" for key, value in {"model_name": model_name, **query}.items())
    return api_client.generic("POST", url, csv_bytes(rows), content_type="text/csv")


def test_a_training_records_its_backtest_on_the_job(train):
    # when
    job = train(backtest=4, gap=3)

    # then
    assert job["status"] == "success", job["error"]
    backtest = job["backtest"]
    assert backtest["estimator"] == "random_forest" and backtest["gap"] == 3
    assert [fold["fold"] for fold in backtest["folds"]] == [1, 2, 3, 4]
    assert {"mae", "rmse", "r2", "test_from", "test_to", "train_rows", "test_rows"} <= backtest["folds"][0].keys()
    assert job["metrics"]["backtest_rmse_mean"] == pytest.approx(backtest["rmse_mean"])
    assert job["counts"]["backtest_folds"] == 4
    assert TrainingJob.objects.get(pk=job["id"]).backtest == backtest


def test_the_backtest_is_logged_per_fold_with_its_plot_and_the_calendar_recorded(train):
    # given
    job = train(backtest=3, calendar="true", estimator="extra_trees")
    client = gateway.client()

    # when
    history = client.get_metric_history(job["mlflow_run_id"], "backtest_fold_rmse")
    run = client.get_run(job["mlflow_run_id"])
    model_id = TrainingJob.objects.get(pk=job["id"]).mlflow_model_id
    plots = {item.path for item in client.list_logged_model_artifacts(model_id, "plots")}

    # then
    assert [metric.step for metric in history] == [1, 2, 3]
    assert [metric.value for metric in history] == pytest.approx([fold["rmse"] for fold in job["backtest"]["folds"]])
    assert run.data.metrics["backtest_rmse_mean"] == pytest.approx(job["backtest"]["rmse_mean"])
    assert contract.plot_path("backtest_error_by_fold") in plots
    assert run.data.tags[contract.ESTIMATOR_TAG] == "extra_trees"
    assert run.data.tags[contract.CALENDAR_TAG] == "timestamp"
    assert run.data.params["calendar"] == "True" and run.data.params["backtest"] == "3"


@pytest.mark.parametrize(
    "query,code,field",
    [
        ("estimator=gradient_magic", "invalid_input", "estimator"),
        ("backtest=-1", "invalid_input", "backtest"),
        ("gap=-2", "invalid_input", "gap"),
        ("backtest=20", "backtest_too_many_folds", None),
        ("backtest=3&gap=80", "backtest_too_many_folds", None),
    ],
)
def test_bad_time_series_options_get_a_400_and_store_nothing(api_client, csv_upload, query, code, field):
    # given: 30 days, 24 rows in the training window
    content = csv_bytes(weather_frame(30))

    # when
    response = api_client.post(f"/train?{query}", {"file": csv_upload(content)})

    # then
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == code
    if field:
        assert body["message"].startswith(f"{field}:")
    else:
        assert body["extra"]["max_backtest"] >= 0 and "folds fit" in body["message"]
    assert not Dataset.objects.exists()


def test_auto_with_calendar_serves_the_best_backtested_model_from_the_timestamp(api_client, model_name, train):
    # given
    job = train(estimator="auto", calendar="true", backtest=3)
    rows = weather_frame(200, seed=5).iloc[-20:]

    # when
    onnx = predict(api_client, model_name, rows, format="onnx")
    sklearn = predict(api_client, model_name, rows, format="sklearn", interval="0.9")

    # then: the leaderboard holds every candidate (today's default without the calendar too), the served one first
    assert job["status"] == "success", job["error"]
    board = job["backtest"]["leaderboard"]
    assert (board[0]["estimator"], board[0]["calendar"]) == (job["backtest"]["estimator"], job["backtest"]["calendar"])
    assert len(board) == 4 and board == sorted(board, key=lambda entry: entry["rmse_mean"])
    assert job["counts"]["n_features"] == len(FEATURES) + (8 if job["backtest"]["calendar"] else 0)
    assert onnx.status_code == 200 and sklearn.status_code == 200, (onnx.json(), sklearn.json())
    np.testing.assert_allclose(onnx.json()["predictions"], sklearn.json()["predictions"], rtol=1e-4)
    assert len(sklearn.json()["intervals"]["lower"]) == 20


def test_a_calendar_version_needs_the_timestamp_column(api_client, model_name, train):
    # given
    train(calendar="true")
    rows = weather_frame(10, seed=5)

    # when
    missing = predict(api_client, model_name, rows.drop(columns=["timestamp"]))
    bad = predict(api_client, model_name, rows.assign(timestamp=["soon"] * len(rows)))

    # then
    assert missing.status_code == 400 and "timestamp" in missing.json()["message"], missing.json()
    assert bad.status_code == 400 and bad.json()["code"] == "bad_timestamp", bad.json()
    assert bad.json()["extra"] == {"column": "timestamp", "row": 1}


def test_calendar_predictions_change_with_the_time_alone(api_client, model_name, train):
    # given: an hourly series whose target follows the hour of day only
    frame = weather_frame(60)
    hours = np.arange(len(frame)) % 24
    frame["timestamp"] = [f"2024-01-{1 + i // 24:02d}T{h:02d}:00:00Z" for i, h in enumerate(hours)][: len(frame)]
    frame["target"] = 100.0 + 50.0 * (hours >= 12)
    train(content=csv_bytes(frame), calendar="true", estimator="extra_trees")
    probe = frame.iloc[:2].copy()
    probe["timestamp"] = ["2024-03-01T03:00:00Z", "2024-03-01T15:00:00Z"]

    # when
    response = predict(api_client, model_name, probe, explain="true")

    # then: same features, different hours, different predictions; the hour is named in the explanation
    assert response.status_code == 200, response.json()
    low, high = response.json()["predictions"]
    assert low < 115 < 135 < high
    contributions = response.json()["contributions"]
    assert contributions["features"] == FEATURES + list(CALENDAR_FEATURES)


def test_boosting_serves_absolute_intervals_and_explains_its_predictions(api_client, model_name, train):
    # given
    job = train(estimator="hist_gradient_boosting", backtest=0)
    rows = weather_frame(10, seed=5)

    # when
    intervals = predict(api_client, model_name, rows, interval="0.9")
    explain = predict(api_client, model_name, rows, explain="true")

    # then: the boosted trees' contributions, named, add up to its predictions (summed, not averaged)
    assert job["status"] == "success", job["error"]
    assert intervals.status_code == 200, intervals.json()
    assert intervals.json()["intervals"]["method"] == "absolute"
    assert explain.status_code == 200, explain.json()
    body = explain.json()
    contributions = body["contributions"]
    assert body["model"]["format"] == "sklearn"
    assert contributions["features"] == FEATURES
    values, base = np.array(contributions["values"]), np.array(contributions["base"])
    assert values.shape == (10, len(FEATURES)) and len(set(base)) == 1
    np.testing.assert_allclose(base + values.sum(axis=1), body["predictions"], rtol=1e-6)
    np.testing.assert_allclose(body["predictions"], intervals.json()["predictions"], rtol=1e-4)
    spread = np.abs(values).mean(axis=0)
    assert spread[FEATURES.index("temperature_c")] > spread[FEATURES.index("pressure_hpa")]
