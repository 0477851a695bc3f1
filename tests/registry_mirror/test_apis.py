"""``GET /models/...``: the registry mirror over the API, read-only and paginated."""

import pytest

from registry_mirror.models import ServedAlias
from tests.factories import ModelVersionFactory, RegisteredModelFactory, served_version_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def weather():
    model = RegisteredModelFactory(name="weather", aliases={"champion": 2})
    ModelVersionFactory(registered_model=model, version=1)
    ModelVersionFactory(registered_model=model, version=2, aliases=["champion"], params={"n_estimators": "100"})
    ModelVersionFactory(registered_model=model, version=3, deleted=True)
    served_version_record("weather", 2)
    ServedAlias.objects.create(model_name="weather", alias="champion", version=2)
    return model


@pytest.mark.parametrize("url", ["/models/", "/models/weather/versions/", "/models/weather/versions/1"])
def test_the_mirror_api_needs_a_token(client, weather, url):
    # when
    response = client.get(url)

    # then
    assert response.status_code == 401


def test_models_are_listed_with_their_aliases_and_paginated(api_client, weather):
    # given
    RegisteredModelFactory(name="wind")
    RegisteredModelFactory(name="gone", deleted=True)

    # when
    first = api_client.get("/models/?limit=1").json()
    everything = api_client.get("/models/").json()

    # then
    assert first["count"] == 2 and first["next"] and len(first["results"]) == 1
    assert [model["name"] for model in everything["results"]] == ["weather", "wind"]
    assert everything["results"][0]["aliases"] == everything["results"][0]["mlflow_aliases"] == {"champion": 2}
    assert everything["results"][0]["versions_url"].endswith("/models/weather/versions/")


def test_versions_of_a_model_are_listed_newest_first_without_deleted_ones(api_client, weather):
    # when
    listed = api_client.get("/models/weather/versions/").json()
    with_deleted = api_client.get("/models/weather/versions/?include_deleted=true").json()

    # then
    assert [v["version"] for v in listed["results"]] == [2, 1]
    assert [v["version"] for v in with_deleted["results"]] == [3, 2, 1]
    assert listed["results"][0]["aliases"] == ["champion"] and listed["results"][0]["metrics"]["r2"] == 0.91
    assert [(v["served"], v["mlflow_aliases"]) for v in listed["results"]] == [("trained", ["champion"]), (None, [])]


def test_one_version_is_shown_with_its_metrics_params_and_uri(api_client, weather):
    # when
    response = api_client.get("/models/weather/versions/2")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["model_uri"] == "models:/weather/2" and body["formats"] == ["onnx", "sklearn"]
    assert body["params"] == {"n_estimators": "100"} and body["metrics"]["onnx_max_abs_diff"] == 1e-5
    assert api_client.get("/models/weather/versions/3").json()["deleted"] is True


@pytest.mark.parametrize("url", ["/models/nope/versions/", "/models/weather/versions/9", "/models/nope"])
def test_unknown_models_and_versions_are_404(api_client, weather, url):
    # when
    response = api_client.get(url)

    # then
    assert response.status_code == 404 and response.json()["code"] == "not_found"
