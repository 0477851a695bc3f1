"""Drift of logged inputs from the training profile: a shifted feature is flagged, and only it."""

import json
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from core import contract
from inference.drift import bin_counts, drift_summary
from inference.models import MonitoringReport, PredictionLog
from inference.monitoring import monitoring_reports_record
from inference.prediction_log import prediction_log_flush
from registry_mirror import gateway
from sample_data.make_weather import make_weather
from tests.factories import csv_bytes, mlflow_version
from training.profile import feature_profile

SEEDS = range(5)
WEATHER_FEATURES = list(make_weather(days=1).columns[1:-1])


def drift_of(profile: dict, X: np.ndarray, names: list[str], min_rows: int = 200) -> dict:
    counts = {name: bin_counts(profile["features"][name]["edges"], X[:, j]) for j, name in enumerate(names)}
    return drift_summary(profile, counts, len(X), threshold=0.2, min_rows=min_rows)


def weather_windows(seed: int) -> tuple[dict, np.ndarray]:
    """The profile of two years' training window (80 % of them), and a fresh year of the same weather."""
    train = make_weather(days=730, seed=seed)[WEATHER_FEATURES].to_numpy(np.float32)[:584]
    live = make_weather(days=365, seed=seed + 100)[WEATHER_FEATURES].to_numpy(np.float32)
    return feature_profile(train, WEATHER_FEATURES), live


@pytest.mark.parametrize("seed", SEEDS)
def test_a_fresh_sample_of_the_same_distribution_flags_nothing(seed):
    # given
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c", "d"]
    scales = np.array([1.0, 10.0, 0.1, 1000.0])
    reference = rng.normal(5.0, 1.0, (5000, 4)) * scales
    live = rng.normal(5.0, 1.0, (1000, 4)) * scales

    # when
    drift = drift_of(feature_profile(reference.astype(np.float32), names), live.astype(np.float32), names)

    # then
    assert drift["drifted"] is False and drift["drifted_features"] == []
    assert max(feature["psi"] for feature in drift["features"].values()) < 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_a_shift_of_three_standard_deviations_flags_that_feature_only(seed):
    # given
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c", "d"]
    reference = rng.normal(0.0, 1.0, (5000, 4)).astype(np.float32)
    profile = feature_profile(reference, names)

    for shifted in range(4):
        live = rng.normal(0.0, 1.0, (1000, 4)).astype(np.float32)
        live[:, shifted] += 3 * profile["features"][names[shifted]]["std"]

        # when
        drift = drift_of(profile, live, names)

        # then
        assert drift["drifted_features"] == [names[shifted]]
        assert drift["features"][names[shifted]]["psi"] > 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_on_the_weather_a_shifted_feature_is_flagged_and_a_fresh_year_is_not(seed):
    # given: discrete (weekday) and mostly-zero (rain) features among them
    profile, live = weather_windows(seed)

    # when
    fresh = drift_of(profile, live, WEATHER_FEATURES)
    shifted = {}
    for j, name in enumerate(WEATHER_FEATURES):
        moved = live.copy()
        moved[:, j] += 3 * profile["features"][name]["std"]
        shifted[name] = drift_of(profile, moved, WEATHER_FEATURES)["drifted_features"]

    # then
    assert fresh["drifted_features"] == []
    assert shifted == {name: [name] for name in WEATHER_FEATURES}


def test_too_few_rows_give_no_verdict():
    # given
    profile, live = weather_windows(0)
    live[:, 0] += 100

    # when
    drift = drift_of(profile, live[:50], WEATHER_FEATURES, min_rows=200)

    # then
    assert drift["drifted"] is None
    assert drift["features"]["temperature_c"]["drifted"] is None
    assert drift["features"]["temperature_c"]["psi"] > 1.0


# --- Through the API, on a trained version --------------------------------------------------------------------


def predict(api_client, model_name, frame):
    response = api_client.generic(
        "POST", f"/predict?model_name={model_name}", csv_bytes(frame), content_type="text/csv"
    )
    assert response.status_code == 200
    return response


def test_the_drift_api_flags_the_shifted_feature_of_the_logged_inputs(api_client, model_name, train):
    # given: a version trained on two years, a fresh year predicted yesterday, the same year shifted today
    version = train(csv_bytes(make_weather(days=730, seed=3)))["registered_version"]
    live = make_weather(days=365, seed=103)
    predict(api_client, model_name, live)
    prediction_log_flush()
    PredictionLog.objects.update(predicted_at=timezone.now() - timedelta(days=1, hours=1))
    temperature_std = live["temperature_c"].std()
    predict(api_client, model_name, live.assign(temperature_c=live["temperature_c"] + 3 * temperature_std))
    prediction_log_flush()
    yesterday = (timezone.now() - timedelta(days=2)).isoformat()
    until = (timezone.now() - timedelta(days=1)).isoformat()

    # when
    today = api_client.get(f"/models/{model_name}/versions/{version}/drift")
    before = api_client.get(f"/models/{model_name}/versions/{version}/drift", {"since": yesterday, "until": until})

    # then
    assert today.status_code == 200, today.json()
    assert today.json()["drifted_features"] == ["temperature_c"]
    assert today.json()["n_rows"] == 365 and today.json()["threshold"] == 0.2
    assert before.json()["drifted"] is False and before.json()["n_rows"] == 365


def test_the_daily_report_records_drift_and_performance(api_client, model_name, train):
    # given
    version = train(csv_bytes(make_weather(days=730, seed=4)))["registered_version"]
    live = make_weather(days=300, seed=104)
    answer = predict(api_client, model_name, live.assign(humidity_pct=live["humidity_pct"] + 60)).json()
    prediction_log_flush()
    api_client.post(
        "/feedback", {"request_id": answer["request_id"], "actuals": live["target"].tolist()}, format="json"
    )

    # when
    reports = monitoring_reports_record()

    # then
    assert len(reports) == 1
    report = MonitoringReport.objects.get(model_name=model_name, model_version=version)
    assert report.drifted is True and report.drifted_features == ["humidity_pct"]
    assert report.n_rows == report.n_feedback == 300
    assert report.performance["mae"] == pytest.approx(
        np.mean(np.abs(live["target"].to_numpy() - np.array(answer["predictions"])))
    )


def test_training_logs_the_profile_with_the_model(train, model_name):
    # given
    version = train()["registered_version"]

    # when
    profile = json.loads(gateway.model_version_file_read(name=model_name, version=version, file=contract.PROFILE_FILE))

    # then: the training rows only (the holdout is the newest 20 % of 120 days)
    assert profile["format"] == contract.PROFILE_FORMAT and profile["n_rows"] == 96
    assert list(profile["features"]) == WEATHER_FEATURES
    assert all(abs(sum(f["shares"]) - 1) < 1e-9 for f in profile["features"].values())


def test_a_version_without_a_profile_has_no_drift_and_an_unknown_one_is_404(api_client, model_name, db):
    # given: a version registered outside MDS
    outside = mlflow_version(model_name)
    PredictionLog.objects.create(
        request_id="7f0c7a4e-54a4-4b43-9a7e-2a0c1b0b7d11",
        predicted_at=timezone.now(),
        model_name=model_name,
        model_version=int(outside.version),
        engine="onnx",
        n_rows=0,
        inputs=b"",
        predictions=b"",
    )

    # when
    no_profile = api_client.get(f"/models/{model_name}/versions/{outside.version}/drift")
    unknown = api_client.get(f"/models/{model_name}/versions/99/drift")

    # then
    assert (no_profile.status_code, no_profile.json()["code"]) == (404, "no_profile")
    assert unknown.status_code == 404
