"""An alias moved through MDS: served at once by the process that moved it, within 2 s by every other."""

import time

import pytest

from core.contract import VersionRef
from inference.model_cache import ModelCache, model_cache
from registry_mirror import selectors
from tests.factories import csv_bytes, weather_frame


@pytest.fixture
def maintainer(role_client):
    return role_client("maintainer")


@pytest.fixture
def two_versions(train, model_name):
    """Version 1 holds @champion (a new model's first version gets it), version 2 waits for promotion."""
    train(max_depth=1)
    return 1, train()["registered_version"]


def served_version(client, model_name) -> int:
    response = client.post(
        f"/predict?model_name={model_name}&alias=champion", csv_bytes(weather_frame(2)), content_type="text/csv"
    )
    assert response.status_code == 200, response.json()
    return int(response["X-Model-Version"])


def test_the_process_that_moves_an_alias_serves_the_new_version_at_once(
    two_versions, maintainer, api_client, model_name, monkeypatch, django_capture_on_commit_callbacks
):
    # given: @champion served from this process's cache, which would not ask the database again for an hour, nor
    # check for moves
    first, second = two_versions
    assert served_version(api_client, model_name) == first
    monkeypatch.setattr(model_cache(), "alias_ttl", 3600.0)
    monkeypatch.setattr(model_cache(), "generation", None)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        moved = maintainer.post(f"/models/{model_name}/aliases/champion", {"version": second}, format="json")

    # then: the very next request serves the new version
    assert moved.status_code == 200, moved.json()
    assert served_version(api_client, model_name) == second


def test_another_process_serves_the_moved_alias_within_two_seconds(two_versions, maintainer, model_name):
    # given: another process's cache (it hears nothing from this one), aliases known for an hour
    first, second = two_versions
    other = ModelCache(max_entries=8, max_bytes=10**12, alias_ttl=3600.0, check_interval=1.0)
    champion = VersionRef.parse("@champion")
    assert other.resolve(model_name, champion) == first

    # when
    moved = maintainer.post(f"/models/{model_name}/aliases/champion", {"version": second}, format="json")
    assert moved.status_code == 200, moved.json()
    started = time.monotonic()

    # then: it serves the new version within 2 s, from its own check of the promotion record
    while other.resolve(model_name, champion) != second:
        assert time.monotonic() - started < 2.0, "the other process still serves the old version"
        time.sleep(0.01)


def test_the_check_reads_the_newest_move_once_per_interval_not_per_request(two_versions, model_name):
    # given
    reads = []

    def generation() -> int:
        reads.append(time.monotonic())
        return selectors.promotion_generation()

    cache = ModelCache(max_entries=8, max_bytes=10**12, alias_ttl=3600.0, check_interval=60.0, generation=generation)

    # when: many requests in a row
    for _ in range(200):
        cache.resolve(model_name, VersionRef.parse("@champion"))

    # then
    assert len(reads) == 1
