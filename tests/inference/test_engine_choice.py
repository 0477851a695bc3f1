"""Which engine answers /predict: the faster one by default, the asked one with ``format``, no untrusted pickle."""

import copy
import threading
import time

import numpy as np
import pytest
from django.utils import timezone

from inference import compiled_forest
from inference.model_cache import model_cache
from registry_mirror.models import TrainedVersion
from tests.factories import csv_bytes, weather_frame


def post(api_client, model_name, rows: int, accept: str | None = None, **query):
    query = {"model_name": model_name, **query}
    url = "/predict?" + "&".join(f"{key}={value}" for key, value in query.items())
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    return api_client.generic("POST", url, csv_bytes(weather_frame(rows)), content_type="text/csv", **headers)


def engine(response) -> str:
    """The engine the answer names, checked to be the same in the header and in the body."""
    assert response.status_code == 200, response.content
    assert response["X-Model-Format"] == response.json()["model"]["format"]
    return response["X-Model-Format"]


@pytest.fixture
def version(train, model_name):
    return train()["registered_version"]


def wait_for_sklearn(model_name: str, version: int) -> None:
    loaded = model_cache().get(model_name, version)
    deadline = time.monotonic() + 60
    while not loaded.pickle.loaded and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.skipif(compiled_forest.walk_library() is None, reason="the compiled walk is not built (make install)")
def test_without_format_every_batch_gets_the_compiled_walk_once_the_forest_is_loaded(api_client, model_name, version):
    # when: the first request is answered by ONNX while the forest loads in the background
    first = post(api_client, model_name, 1)
    wait_for_sklearn(model_name, version)
    one, many = post(api_client, model_name, 1), post(api_client, model_name, 700)

    # then: sklearn's predictions (its trees summed in order, as with n_jobs=None) to the bit, for one row and
    # for a batch split across threads
    loaded = model_cache().get(model_name, version)
    assert loaded.pickle.compiled is not None
    assert engine(first) == "onnx"
    assert engine(one) == engine(many) == "sklearn"
    for response, rows in ((one, 1), (many, 700)):
        X = weather_frame(rows)[loaded.feature_names].to_numpy(dtype=np.float32)
        in_order = copy.copy(loaded.pickle.load().model).set_params(n_jobs=None).predict(X)
        assert response.json()["predictions"] == in_order.tolist()
    np.testing.assert_allclose(first.json()["predictions"], one.json()["predictions"], rtol=1e-4)


@pytest.mark.skipif(compiled_forest.walk_library() is None, reason="the compiled walk is not built (make install)")
def test_the_onnx_session_closes_once_the_walk_serves_and_opens_again_when_asked_for(api_client, model_name, version):
    # given: the forest loaded and packed
    loaded = model_cache().get(model_name, version)
    loaded.pickle.load()

    # when
    closed = formats_in_memory(api_client, model_name, version)
    asked = post(api_client, model_name, 3, format="onnx")

    # then
    assert closed == ["sklearn"]
    assert engine(asked) == "onnx"
    assert formats_in_memory(api_client, model_name, version) == ["onnx", "sklearn"]


def formats_in_memory(api_client, model_name, version) -> list[str]:
    (entry,) = [
        entry
        for entry in api_client.get("/health/ready").json()["loaded"]
        if (entry["name"], entry["version"]) == (model_name, version)
    ]
    return entry["formats"]


def test_without_format_and_without_the_compiled_walk_small_batches_get_onnx(
    api_client, model_name, version, settings, no_compiled_walk
):
    # given
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 50

    # when
    response = post(api_client, model_name, 49)
    as_csv = post(api_client, model_name, 49, accept="text/csv")

    # then: and the pickle was not loaded for them
    assert engine(response) == "onnx"
    assert as_csv.status_code == 200 and as_csv["X-Model-Format"] == "onnx"
    assert not model_cache().get(model_name, version).pickle.loaded


def test_without_format_a_large_batch_gets_sklearn_once_its_model_is_loaded(api_client, model_name, version, settings):
    # given: the pickle is not unpickled until the default engine wants it
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 50
    assert not model_cache().get(model_name, version).pickle.loaded

    # when: the first large batch is answered at once by ONNX while sklearn loads in the background
    first = post(api_client, model_name, 50)
    wait_for_sklearn(model_name, version)
    later = post(api_client, model_name, 50)

    # then
    assert engine(first) == "onnx"
    assert engine(later) == "sklearn"
    np.testing.assert_allclose(first.json()["predictions"], later.json()["predictions"], rtol=1e-4)


def test_an_explicit_format_wins_over_the_default_choice(api_client, model_name, version, settings):
    # given: sklearn loaded, and a threshold every batch passes
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 1
    model_cache().get(model_name, version).pickle.load()

    # when
    chosen = post(api_client, model_name, 5)
    onnx = post(api_client, model_name, 5, format="onnx")
    sklearn = post(api_client, model_name, 1, format="sklearn")

    # then
    assert engine(chosen) == "sklearn"
    assert engine(onnx) == "onnx"
    assert engine(sklearn) == "sklearn"


def test_the_default_never_picks_a_pickle_this_service_did_not_train(api_client, model_name, version, settings):
    # given: a version recorded as adopted (registered straight into MLflow): its pickle is never trusted
    TrainedVersion.objects.filter(name=model_name).update(
        origin=TrainedVersion.Origin.ADOPTED, job_key=None, sklearn_sha256="", adopted_at=timezone.now()
    )
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 1

    # when
    first = post(api_client, model_name, 5)
    later = post(api_client, model_name, 5)

    # then: ONNX, and the pickle was never loaded, nor is a load under way (a request would have started it)
    pickle = model_cache().get(model_name, version).pickle
    assert engine(first) == engine(later) == "onnx"
    assert not pickle.loaded and not pickle.loading


def test_the_default_stops_trying_a_pickle_that_was_refused(api_client, model_name, version, settings):
    # given: the recorded checksum no longer matches the pickle (as for one replaced in the artifact store)
    TrainedVersion.objects.filter(name=model_name).update(sklearn_sha256="0" * 64)
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 1
    loaded = model_cache().get(model_name, version)
    post(api_client, model_name, 5)
    deadline = time.monotonic() + 60
    while not loaded.pickle.refused and time.monotonic() < deadline:
        time.sleep(0.05)

    # when
    response = post(api_client, model_name, 5)
    explicit = post(api_client, model_name, 5, format="sklearn")

    # then
    assert loaded.pickle.refused
    assert engine(response) == "onnx"
    assert explicit.status_code == 409 and explicit.json()["code"] == "untrusted_artifact"


def test_a_large_batch_does_not_wait_for_a_sklearn_load_in_progress(api_client, model_name, version, settings):
    # given: a sklearn load in progress, which holds the version's pickle lock while it unpickles
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 50
    loaded = model_cache().get(model_name, version)
    holding, answered, seen = threading.Event(), threading.Event(), {}

    def load_in_progress():
        with loaded.pickle._lock:
            holding.set()
            seen["answered_meanwhile"] = answered.wait(timeout=30)

    loader = threading.Thread(target=load_in_progress)
    loader.start()
    holding.wait(timeout=10)

    # when
    response = post(api_client, model_name, 50)
    answered.set()
    loader.join()

    # then: ONNX answered while the lock was held, instead of waiting for the load
    assert engine(response) == "onnx"
    assert seen["answered_meanwhile"]
