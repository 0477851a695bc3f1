"""/metrics: predictions counted under their model and version, who may read them, and the worker processes."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.factories import api_token, csv_bytes, weather_frame

ROOT = Path(__file__).resolve().parents[2]


def scrape(client, **headers) -> dict[tuple, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def served(samples: dict, name: str, **labels) -> float:
    """``name``'s value under ``labels``, summed over the engines that served: which one answers a request depends
    on whether the version's forest has finished loading in the background, not on the request."""
    return sum(value(samples, name, **labels, engine=engine) for engine in ("onnx", "sklearn"))


def predict(api_client, model_name, version, rows=2, body=None):
    return api_client.generic(
        "POST",
        f"/predict?model_name={model_name}&version={version}",
        body if body is not None else csv_bytes(weather_frame(rows)),
        content_type="text/csv",
    )


def test_metrics_count_each_prediction_under_its_model_and_version(api_client, client, model_name, train):
    # given: two versions
    first, second = train()["registered_version"], train()["registered_version"]
    before = scrape(client)

    # when: three answers from the first, two from the second, one refused row of the second
    for _ in range(3):
        assert predict(api_client, model_name, first).status_code == 200
    for _ in range(2):
        assert predict(api_client, model_name, second, rows=5).status_code == 200
    assert predict(api_client, model_name, second, body=b"temperature_c\nhot\n").status_code == 400
    assert predict(api_client, "no_such_model_anywhere", 1).status_code == 404
    after = scrape(client)

    # then
    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    def served_delta(name, **labels):
        return served(after, name, **labels) - served(before, name, **labels)

    ok = {"model": model_name, "protocol": "mds"}
    assert served_delta("mds_predictions_total", **ok, version=str(first), status="200") == 3
    assert served_delta("mds_predictions_total", **ok, version=str(second), status="200") == 2
    # No engine ran for the refused body: it counts under the format asked for, the default's "auto".
    refused = {"model": model_name, "engine": "auto", "version": str(second), "protocol": "mds"}
    assert delta("mds_predictions_total", **refused, status="400") == 1
    assert delta("mds_predictions_total", model="", version="", engine="", protocol="mds", status="404") == 1
    assert served_delta("mds_predicted_rows_total", **ok, version=str(second)) == 10
    assert served_delta("mds_prediction_seconds_count", **ok, version=str(first)) == 3
    assert delta("mds_model_cache_loads_total", model=model_name, version=str(first)) == 1
    assert delta("mds_model_cache_hits_total", model=model_name, version=str(first)) == 2
    assert value(after, "mds_training_jobs", status="success") >= 2
    assert value(after, "mds_training_job_duration_seconds_count", status="success") >= 2


def test_metrics_need_a_token_unless_asked_from_loopback(api_client, client, user):
    # when
    remote = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    proxied = client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3")
    with_token = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    local = client.get("/metrics")

    # then
    assert remote.status_code == proxied.status_code == 401
    assert with_token.status_code == local.status_code == 200
    assert with_token["Content-Type"].startswith("text/plain")


def test_loopback_access_can_be_switched_off(client, settings, db):
    # given
    settings.MDS_METRICS_ALLOW_LOOPBACK = False

    # when
    response = client.get("/metrics")

    # then
    assert response.status_code == 401


def test_worker_processes_add_up_in_the_multiprocess_directory(tmp_path):
    # given: two processes, as two gunicorn workers, counting predictions of the same version
    count = "from inference.metrics import PREDICTIONS\nPREDICTIONS.labels('m', '1', 'onnx', 'mds', '200').inc(3)\n"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [subprocess.run([sys.executable, "-c", count], cwd=ROOT, env=env, check=True) for _ in range(2)]

    # when: a scrape from a third
    scrape_code = "from core.metrics import metrics_text\nprint(metrics_text()[0].decode())\n"
    out = subprocess.run(
        [sys.executable, "-c", scrape_code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "mds_project.settings.test"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    # then
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(out)
        for sample in family.samples
    }
    labels = (("engine", "onnx"), ("model", "m"), ("protocol", "mds"), ("status", "200"), ("version", "1"))
    assert len(workers) == 2
    assert samples[("mds_predictions_total", labels)] == 6
