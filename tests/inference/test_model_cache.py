"""The model cache: one load per version under concurrency, count and byte bounds, aliases on a TTL."""

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core import contract
from core.contract import VersionRef
from core.errors import Conflict, MlflowUnavailable, NotFound
from inference.compiled_forest import walk_library
from inference.model_cache import ModelCache, model_cache
from registry_mirror import gateway
from registry_mirror.services import registry_mirror_sync
from tests.factories import mlflow_version


class CountingSource:
    """The gateway's serving calls, counted: how many times a version's ONNX and sklearn files were downloaded."""

    def __init__(self):
        self.onnx_fetches = 0
        self.sklearn_fetches = 0
        self._lock = threading.Lock()

    def model_version_fetch(self, **kwargs):
        with self._lock:
            self.onnx_fetches += contract.ONNX_FILE in kwargs["files"]
            self.sklearn_fetches += contract.SKLEARN_FILE in kwargs["files"]
        return gateway.model_version_fetch(**kwargs)


def new_cache(**limits) -> tuple[ModelCache, CountingSource]:
    source = CountingSource()
    options = {"max_entries": 8, "max_bytes": 10**12, "alias_ttl": 30.0, **limits}
    return ModelCache(**options, source=source), source


# Loads read the checksums from the database in other threads: on SQLite they must see committed rows.
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_load_a_version_once(train, model_name):
    # given
    version = train()["registered_version"]
    cache, source = new_cache()
    start = threading.Barrier(8)

    def first_request(_):
        start.wait()
        return cache.get(model_name, version)

    # when
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(first_request, range(8)))

    # then
    assert source.onnx_fetches == 1
    assert cache.loads == 1
    assert all(entry is loaded[0] for entry in loaded)
    # files live under one directory per process, removed when it exits
    assert loaded[0].workdir.parent.name.startswith(f"mds-serving-{os.getpid()}-")


def test_the_count_bound_evicts_the_least_recently_used_version(train, model_name):
    # given
    versions = [train()["registered_version"] for _ in range(3)]
    cache, _ = new_cache(max_entries=2)
    first = cache.get(model_name, versions[0])
    cache.get(model_name, versions[1])
    cache.get(model_name, versions[0])  # used again: the second is now the oldest

    # when
    cache.get(model_name, versions[2])

    # then
    assert sorted(entry.version for entry in cache.loaded()) == [versions[0], versions[2]]
    assert first.workdir.exists()


def test_the_byte_bound_evicts_until_the_loaded_artifacts_fit(train, model_name):
    # given: room for one version's ONNX file only
    versions = [train()["registered_version"] for _ in range(2)]
    probe, _ = new_cache()
    size = probe.get(model_name, versions[0]).nbytes
    probe.clear()
    cache, _ = new_cache(max_bytes=size + size // 2)
    evicted = cache.get(model_name, versions[0])

    # when
    cache.get(model_name, versions[1])

    # then
    assert [entry.version for entry in cache.loaded()] == [versions[1]]
    assert not evicted.workdir.exists()


def test_loading_the_sklearn_model_keeps_the_byte_bound(train, model_name):
    # given: room for two ONNX files, not for two ONNX files and a pickle
    versions = [train()["registered_version"] for _ in range(2)]
    probe, _ = new_cache()
    sizes = []
    for version in versions:
        entry = probe.get(model_name, version)
        onnx_bytes = entry.nbytes
        entry.pickle.load()
        sizes.append((onnx_bytes, entry.nbytes - onnx_bytes))
    probe.clear()
    cache, _ = new_cache(max_bytes=sum(onnx for onnx, _ in sizes) + sizes[1][1] // 2)
    first = cache.get(model_name, versions[0])
    second = cache.get(model_name, versions[1])
    assert len(cache.loaded()) == 2

    # when
    second.pickle.load()

    # then
    assert [entry.version for entry in cache.loaded()] == [versions[1]]
    assert not first.workdir.exists()


def test_a_sklearn_request_as_a_version_is_published_shares_the_prefetch(train, model_name):
    # given: a sklearn request that arrives the moment the new entry is visible (bounds are checked right
    # after a version is published)
    version = train()["registered_version"]
    source = CountingSource()

    class RequestOnPublish(ModelCache):
        request = None

        def enforce_bounds(self):
            super().enforce_bounds()
            request, self.request = self.request, None
            if request is not None:
                request()

    cache = RequestOnPublish(max_entries=8, max_bytes=10**12, alias_ttl=30.0, source=source)
    cache.request = lambda: cache.get(model_name, version).pickle.load()

    # when
    loaded = cache.get(model_name, version)
    loaded.pickle._prefetch.join()

    # then: one download of the pickle, by the prefetch, which the request waited for
    assert loaded.pickle.loaded
    assert source.sklearn_fetches == 1


def test_a_damaged_pickle_is_fetched_again_before_it_is_refused(train, model_name):
    # given: a download cut short left part of the pickle in the version's directory
    version = train()["registered_version"]
    cache, source = new_cache()
    loaded = cache.get(model_name, version)
    loaded.pickle._prefetch.join()
    pickle_path = loaded.workdir / contract.SKLEARN_FILE
    pickle_path.write_bytes(pickle_path.read_bytes()[:100])

    # when
    model = loaded.pickle.load().model

    # then
    assert model.predict([[0.0] * len(loaded.feature_names)]).shape == (1,)
    assert source.sklearn_fetches == 2
    assert gateway.file_sha256(pickle_path) == loaded.pickle.sha256


# The threads read MDS's database: on SQLite they must see committed rows.
@pytest.mark.django_db(transaction=True)
def test_unknown_versions_and_aliases_leave_no_lock_behind(model_name):
    # given: a model with one version and no alias
    mlflow_version(model_name, served=True)
    cache, _ = new_cache()
    start = threading.Barrier(4)

    def bogus_request(_):
        start.wait()
        with pytest.raises(NotFound):
            cache.get(model_name, 99)
        with pytest.raises(NotFound):
            cache.resolve(model_name, VersionRef.parse("nobody"))

    # when
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(bogus_request, range(4)))
    latest = cache.resolve(model_name, VersionRef.parse("latest"))

    # then
    assert latest == 1
    assert cache._key_locks == {}


def test_an_alias_refresh_that_fails_unexpectedly_is_tried_again(caplog):
    # given: champion known as version 1, then moved to 2; the next refresh fails with an unexpected error

    class FailingOnce:
        """MDS's record of where champion points, whose next read fails once."""

        fail = False
        champion = 1

        def __call__(self, *, name, reference):
            if self.fail:
                self.fail = False
                raise RuntimeError("connection pool broken")
            return self.champion

    resolver = FailingOnce()
    cache = ModelCache(max_entries=8, max_bytes=10**12, alias_ttl=0.0, source=CountingSource(), resolver=resolver)
    assert cache.resolve("weather", VersionRef.parse("champion")) == 1
    resolver.champion, resolver.fail = 2, True

    # when: requests keep coming
    deadline = time.monotonic() + 10
    while cache.resolve("weather", VersionRef.parse("champion")) != 2 and time.monotonic() < deadline:
        time.sleep(0.02)

    # then
    assert not resolver.fail
    assert cache.resolve("weather", VersionRef.parse("champion")) == 2
    assert any(
        record.levelno == logging.ERROR and "connection pool broken" in str(record.exc_info[1])
        for record in caplog.records
        if record.exc_info
    )


def test_numbers_are_resolved_from_mds_record_not_mlflow(db, model_name):
    # given: version 1 recorded as served, version 2 registered straight in MLflow
    mlflow_version(model_name, served=True)
    mlflow_version(model_name)
    registry_mirror_sync(model_name=model_name)
    cache, _ = new_cache()

    # when
    served = cache.resolve(model_name, VersionRef.parse("1"))
    latest = cache.resolve(model_name, VersionRef.parse("latest"))
    with pytest.raises(Conflict) as refused:
        cache.resolve(model_name, VersionRef.parse("2"))
    with pytest.raises(NotFound):
        cache.resolve(model_name, VersionRef.parse("champion"))

    # then
    assert (served, latest) == (1, 1)
    assert refused.value.code == "version_not_adopted"
    assert refused.value.extra == {
        "model_name": model_name,
        "version": 2,
        "adopt": f"/models/{model_name}/versions/2/adopt",
    }


def test_a_missing_version_is_not_found_and_the_cache_still_serves(train, model_name):
    # given
    version = train()["registered_version"]
    cache = model_cache()

    # when
    with pytest.raises(NotFound):
        cache.get(model_name, version + 1)

    # then
    assert cache.get(model_name, version).feature_names[:2] == ["temperature_c", "humidity_pct"]


@pytest.mark.skipif(walk_library() is None, reason="the compiled walk is not built (make install)")
def test_a_closed_onnx_session_of_an_evicted_version_asks_for_a_retry_instead_of_failing(train, model_name):
    # given: the forest serves through the compiled walk, its ONNX session closed; then the version is evicted
    version = train()["registered_version"]
    cache, _ = new_cache()
    loaded = cache.get(model_name, version)
    loaded.pickle.load()
    assert not loaded.onnx.in_memory
    loaded.close()

    # when / then: a request that still holds the version gets a 503 to retry with
    with pytest.raises(MlflowUnavailable, match="evicted"):
        loaded.onnx.session()


def test_a_version_number_known_to_be_served_keeps_serving_while_the_database_is_down():
    # given: version 3 checked once against MDS's record, which then cannot be read (re-checked on every request)
    from django.db import OperationalError

    class Record:
        down = False

        def __call__(self, *, name, reference):
            if self.down:
                raise OperationalError("server closed the connection unexpectedly")
            return reference.number

    record = Record()
    cache = ModelCache(max_entries=8, max_bytes=10**12, alias_ttl=0.0, source=CountingSource(), resolver=record)
    assert cache.resolve("weather", VersionRef.parse("3")) == 3
    record.down = True

    # when
    known = cache.resolve("weather", VersionRef.parse("3"))
    with pytest.raises(OperationalError):
        cache.resolve("weather", VersionRef.parse("4"))

    # then: the checked version serves; one never checked is the database's 503
    assert known == 3
