"""Serving by alias and promotion: @champion on a new model's first version, the RMSE gate, force, removal."""

import time

import pytest

from inference.model_cache import model_cache
from registry_mirror import gateway, selectors
from registry_mirror.models import AliasMove
from registry_mirror.services import model_alias_set
from tests.factories import csv_bytes, weather_frame


@pytest.fixture
def maintainer(role_client):
    return role_client("maintainer")


def served_version(client, model_name, **query) -> int:
    params = "".join(f"&{key}={value}" for key, value in query.items())
    response = client.post(
        f"/predict?model_name={model_name}{params}", csv_bytes(weather_frame(2)), content_type="text/csv"
    )
    assert response.status_code == 200, response.json()
    return int(response["X-Model-Version"])


def test_a_new_models_first_version_is_champion_and_later_trainings_never_move_it(train, api_client, model_name, user):
    # when
    first, second = train()["registered_version"], train()["registered_version"]

    # then: /predict without version serves @champion, still the first
    assert gateway.model_aliases(name=model_name) == {"champion": first}
    assert selectors.served_aliases_of(name=model_name) == {"champion": first}
    assert served_version(api_client, model_name) == first
    assert served_version(api_client, model_name, version="latest") == second
    move = AliasMove.objects.get(model_name=model_name)
    assert (move.to_version, move.source, move.moved_by) == (1, "first_version", user)


def test_promoting_a_better_version_moves_the_alias_and_audits_it(train, maintainer, api_client, model_name):
    # given: champion on a deliberately poor first version (trees of depth 1), a better second
    train(max_depth=1)
    better = train()["registered_version"]

    # when
    response = maintainer.post(f"/models/{model_name}/aliases/champion", {"version": better}, format="json")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "model_name": model_name,
        "alias": "champion",
        "version": better,
        "previous_version": 1,
        "moved": True,
        "forced": False,
    }
    assert gateway.model_aliases(name=model_name) == {"champion": better}
    move = AliasMove.objects.filter(model_name=model_name).first()
    assert (move.from_version, move.to_version, move.source, move.forced) == (1, better, "api", False)
    assert served_version(api_client, model_name, alias="champion") == better


def test_a_worse_version_is_refused_unless_forced_and_the_force_is_audited(train, maintainer, model_name):
    # given: a good champion and a much worse candidate
    train()
    worse = train(max_depth=1)["registered_version"]
    url = f"/models/{model_name}/aliases/champion"

    # when
    refused = maintainer.post(url, {"version": worse}, format="json")
    forced = maintainer.post(url, {"version": worse, "force": True}, format="json")

    # then
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "worse_than_current"
    assert body["extra"]["current_version"] == 1 and body["extra"]["rmse"] > body["extra"]["current_rmse"] * 1.05
    assert forced.status_code == 200 and forced.json()["forced"] is True
    assert AliasMove.objects.filter(model_name=model_name, to_version=worse, forced=True).count() == 1


def test_a_version_within_the_tolerance_is_promoted(train, maintainer, model_name, settings):
    # given: a second version a little worse than the first, within a generous tolerance
    train()
    worse = train(max_depth=1)["registered_version"]
    settings.MDS_PROMOTION_TOLERANCE = 100.0

    # when
    response = maintainer.post(f"/models/{model_name}/aliases/champion", {"version": worse}, format="json")

    # then
    assert response.status_code == 200 and response.json()["forced"] is False


# The alias is re-resolved in another thread, which reads MDS's database: on SQLite it must see committed rows.
@pytest.mark.django_db(transaction=True)
def test_removing_an_alias_stops_serving_it(train, maintainer, api_client, model_name, monkeypatch):
    # given: aliases that expire at once
    monkeypatch.setattr(model_cache(), "alias_ttl", 0.0)
    version = train()["registered_version"]
    maintainer.post(f"/models/{model_name}/aliases/staging", {"version": version}, format="json")
    assert served_version(api_client, model_name, alias="staging") == version

    # when
    removed = maintainer.delete(f"/models/{model_name}/aliases/staging")
    again = maintainer.delete(f"/models/{model_name}/aliases/staging")

    # then
    assert removed.status_code == 200 and removed.json()["previous_version"] == version
    assert again.status_code == 404
    assert "staging" not in gateway.model_aliases(name=model_name)
    assert AliasMove.objects.filter(model_name=model_name, alias="staging", to_version=None).exists()
    # the known version answers while the alias is re-resolved in the background, then the removal shows
    statuses = []
    deadline = time.monotonic() + 30
    while 404 not in statuses and time.monotonic() < deadline:
        url = f"/predict?model_name={model_name}&alias=staging"
        statuses.append(api_client.post(url, csv_bytes(weather_frame(2)), content_type="text/csv").status_code)
        time.sleep(0.05)
    assert statuses[-1] == 404 and set(statuses) <= {200, 404}


@pytest.mark.parametrize(
    ("url", "body", "status", "code"),
    [
        ("/models/nope/aliases/champion", {"version": 1}, 404, "not_found"),
        ("/models/{name}/aliases/champion", {"version": 99}, 404, "not_found"),
        ("/models/{name}/aliases/latest", {"version": 1}, 400, "invalid_alias"),
        ("/models/{name}/aliases/champion", {"version": 0}, 400, "invalid_input"),
        ("/models/bad%20name/aliases/champion", {"version": 1}, 404, "not_found"),
    ],
)
def test_bad_promotions_are_refused_clearly(train, maintainer, model_name, url, body, status, code):
    # given
    train()

    # when
    response = maintainer.post(url.format(name=model_name), body, format="json")

    # then
    assert response.status_code == status
    assert response.json()["code"] == code


def test_live_evidence_replaces_the_holdout_comparison_and_is_not_a_force(train, model_name, django_user_model):
    # given: a champion, and a version whose holdout RMSE is much worse
    train()
    worse = train(max_depth=1)["registered_version"]
    user = django_user_model.objects.create(username="trial-decider")

    # when: a live trial's paired comparison found it better on the same rows
    move = model_alias_set(
        name=model_name, alias="champion", version=worse, user=user, source="trial", live_evidence=True
    )

    # then: moved, audited as the trial's, not as forced
    assert (move.to_version, move.source, move.forced) == (worse, "trial", False)
    assert gateway.model_aliases(name=model_name)["champion"] == worse
