"""/predict?interval=: split-conformal prediction intervals, calibrated at training, served by both engines."""

import csv
import io
import json
import math
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from core import contract
from core.intervals import ABSOLUTE, SCALED, Calibration
from registry_mirror import gateway
from registry_mirror.services import trained_version_register
from tests.factories import csv_bytes, weather_frame


def predict(api_client, model_name, rows: pd.DataFrame, accept=None, **query):
    url = "/predict?" + "&".join(f"{key}={value}" for key, value in {"model_name": model_name, **query}.items())
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    return api_client.generic("POST", url, csv_bytes(rows), content_type="text/csv", **headers)


def stored_file(model_name: str, version: int, file: str) -> Path:
    """Where the local MLflow store keeps one file of a version's model directory."""
    uri = gateway.client().get_model_version_download_uri(model_name, str(version))
    return Path(urlparse(uri).path) / file


def heteroscedastic_frame(n: int = 1000, seed: int = 4) -> pd.DataFrame:
    """A target whose noise is 40x larger for x > 0.7: the trees disagree most where the noise is."""
    rng = np.random.default_rng(seed)
    x, z = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    y = 100 * x + rng.normal(0, 1 + 40 * (x > 0.7), n)
    timestamps = pd.date_range("2020-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M")
    return pd.DataFrame({"timestamp": timestamps, "x": x.round(4), "z": z.round(4), "target": y.round(3)})


def test_90_percent_intervals_cover_a_year_the_model_never_saw(api_client, model_name, train):
    # given: a model trained on three years of daily data
    series = weather_frame(4 * 365 + 1)
    job = train(csv_bytes(series.iloc[: 3 * 365]))
    fourth_year = series.iloc[3 * 365 :]

    # when: it predicts the fourth year with 90 % intervals
    response = predict(api_client, model_name, fourth_year, interval=0.9)

    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    lower, upper = np.array(body["intervals"]["lower"]), np.array(body["intervals"]["upper"])
    predictions, actual = np.array(body["predictions"]), fourth_year["target"].to_numpy()
    assert body["intervals"]["level"] == 0.9 and body["intervals"]["method"] in (ABSOLUTE, SCALED)
    assert np.all(lower < predictions) and np.all(predictions < upper)
    coverage = np.mean((lower <= actual) & (actual <= upper))
    assert 0.85 <= coverage <= 0.96, coverage
    # training measured the same intervals on its holdout, and recorded them per level
    for level in ("80", "90", "95"):
        assert 0 < job["metrics"][f"interval_coverage_{level}"] <= 1
        assert job["metrics"][f"interval_mean_width_{level}"] > 0
    assert job["metrics"]["interval_mean_width_80"] < job["metrics"]["interval_mean_width_95"]
    assert job["counts"]["n_calibration"] == round(0.2 * (3 * 365 - round(0.2 * 3 * 365)))


@pytest.mark.parametrize("method_data", ["absolute", "scaled"])
def test_both_engines_give_the_same_offsets(api_client, model_name, train, method_data):
    # given: a version calibrated with each method (the noisy target makes `scaled` win on the holdout)
    frame = weather_frame(3 * 365) if method_data == "absolute" else heteroscedastic_frame()
    train(csv_bytes(frame))
    rows = frame.iloc[-50:]

    # when
    answers = {
        engine: predict(api_client, model_name, rows, interval=0.8, format=engine).json()
        for engine in ("onnx", "sklearn")
    }

    # then
    offsets = {}
    for engine, body in answers.items():
        assert body["intervals"]["method"] == method_data
        predictions = np.array(body["predictions"])
        offsets[engine] = (
            predictions - body["intervals"]["lower"],
            np.array(body["intervals"]["upper"]) - predictions,
        )
        np.testing.assert_allclose(offsets[engine][0], offsets[engine][1], rtol=1e-9)
    np.testing.assert_allclose(offsets["onnx"][1], offsets["sklearn"][1], rtol=1e-6)
    if method_data == "scaled":
        # the offsets follow the rows: wider where the noise is
        noisy = rows["x"].to_numpy() > 0.75
        assert offsets["sklearn"][1][noisy].mean() > 2 * offsets["sklearn"][1][rows["x"].to_numpy() < 0.6].mean()


def test_any_level_is_answered_from_the_stored_calibration_scores(api_client, model_name, train, tmp_path):
    # given: a version and its calibration file, as the model cache downloads it
    version = train()["registered_version"]
    fetched = gateway.model_version_fetch(
        name=model_name, version=version, files=[], optional=(contract.INTERVALS_FILE,), dst=str(tmp_path)
    )
    stored = json.loads(Path(fetched["paths"][contract.INTERVALS_FILE]).read_text())
    scores, n = sorted(stored["scores"]), stored["n"]
    rows = weather_frame(5)

    # when: levels between and below the recorded ones
    widths = {}
    for level in (0.5, 0.8, 0.85, 0.9):
        body = predict(api_client, model_name, rows, interval=level).json()
        widths[level] = np.array(body["intervals"]["upper"]) - body["predictions"]

    # then: each scales with the ceil((n + 1) level)-th smallest score, the split-conformal quantile (for the
    # `scaled` method times each row's spread, the same at every level)
    assert n == len(scores) == 19
    quantile = {level: scores[math.ceil((n + 1) * level) - 1] for level in widths}
    for level, width in widths.items():
        np.testing.assert_allclose(width / widths[0.9], quantile[level] / quantile[0.9], rtol=1e-9)
    assert quantile[0.5] < quantile[0.8] <= quantile[0.85] <= quantile[0.9]
    assert stored["quantiles"]["90"] == quantile[0.9]


@pytest.mark.parametrize("level", ["0", "1", "-0.1", "1.5", "abc", "nan", "inf", ""])
def test_a_level_outside_0_1_is_refused(api_client, model_name, train, level):
    # given
    train()

    # when
    response = predict(api_client, model_name, weather_frame(3), interval=level)

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert response.json()["message"].startswith("interval:")


def test_a_level_the_calibration_cannot_answer_is_refused_with_the_highest_it_can(api_client, model_name, train):
    # given: 19 calibration rows answer levels up to 19/20
    train()

    # when
    highest = predict(api_client, model_name, weather_frame(3), interval=0.95)
    beyond = predict(api_client, model_name, weather_frame(3), interval=0.99)

    # then
    assert highest.status_code == 200
    assert beyond.status_code == 400
    assert beyond.json()["code"] == "invalid_input"
    assert beyond.json()["extra"] == {"interval": 0.99, "max_level": 0.95, "calibration_rows": 19}


def test_csv_answers_carry_the_bounds_as_columns(api_client, model_name, train):
    # given
    train()
    rows = weather_frame(4)

    # when
    response = predict(api_client, model_name, rows, accept="text/csv", interval=0.9)

    # then
    assert response.status_code == 200
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(table[0])[-3:] == ["prediction", "prediction_lower", "prediction_upper"]
    json_body = predict(api_client, model_name, rows, interval=0.9).json()
    assert [float(row["prediction_lower"]) for row in table] == json_body["intervals"]["lower"]
    assert [float(row["prediction_upper"]) for row in table] == json_body["intervals"]["upper"]


def test_a_version_trained_without_intervals_still_predicts_and_says_why_it_has_none(api_client, model_name):
    # given: a version registered without a calibration file, as before intervals existed
    from training import ml

    data = ml.prepare_data(weather_frame(60), target="target", timestamp="timestamp")
    result = ml.train(data, ml.TrainingParams(n_estimators=3))
    example = pd.DataFrame(result.X_test[:2].astype("float64"), columns=result.feature_names)
    model = gateway.TrainedModel(result.estimator, result.onnx_model, example, params={}, metrics={})
    trained_version_register(job_key=str(uuid.uuid4()), model_name=model_name, model=model)

    # when
    plain = predict(api_client, model_name, weather_frame(3), version=1)
    with_interval = predict(api_client, model_name, weather_frame(3), version=1, interval=0.9)

    # then
    assert plain.status_code == 200
    assert with_interval.status_code == 400
    assert with_interval.json()["code"] == "intervals_unavailable"
    assert "has no prediction intervals" in with_interval.json()["message"]


def test_a_calibration_file_that_fails_its_checksum_is_not_used(api_client, model_name, train):
    # given: a version whose stored calibration was changed after training (every score halved)
    version = train()["registered_version"]
    path = stored_file(model_name, version, contract.INTERVALS_FILE)
    document = json.loads(path.read_text())
    document["scores"] = [score / 2 for score in document["scores"]]
    path.write_text(json.dumps(document))
    assert Calibration.from_json(path.read_bytes()).n == 19

    # when
    plain = predict(api_client, model_name, weather_frame(3))
    with_interval = predict(api_client, model_name, weather_frame(3), interval=0.9)

    # then
    assert plain.status_code == 200
    assert with_interval.status_code == 400
    assert with_interval.json()["code"] == "intervals_unavailable"
    assert "checksum" in with_interval.json()["message"]
