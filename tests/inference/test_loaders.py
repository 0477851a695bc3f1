"""The model cache: one load per version under concurrency, count and byte bounds, the MLflow child process."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.loaders import ChildProcessRegistry, InProcessRegistry, ModelCache, model_cache
from registry_mirror import gateway
from registry_mirror.errors import NotFound


class CountingRegistry(InProcessRegistry):
    """The real registry calls, counted: how many times a version's ONNX file was downloaded."""

    def __init__(self):
        self.onnx_fetches = 0
        self._lock = threading.Lock()

    def fetch(self, **kwargs):
        if gateway.ONNX_FILE in kwargs["files"]:
            with self._lock:
                self.onnx_fetches += 1
        return super().fetch(**kwargs)


def new_cache(**limits) -> tuple[ModelCache, CountingRegistry]:
    registry = CountingRegistry()
    options = {"max_entries": 8, "max_bytes": 10**12, "alias_ttl": 30.0, **limits}
    return ModelCache(**options, registry=registry), registry


def test_concurrent_first_requests_load_a_version_once(train, model_name):
    # given
    version = train()["registered_version"]
    cache, registry = new_cache()
    start = threading.Barrier(8)

    def first_request(_):
        start.wait()
        return cache.get(model_name, version)

    # when
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(first_request, range(8)))

    # then
    assert registry.onnx_fetches == 1
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


def test_a_missing_version_is_not_found_through_the_child_process(train, model_name):
    # given
    version = train()["registered_version"]
    cache = model_cache()
    assert isinstance(cache.registry.child, ChildProcessRegistry)

    # when
    with pytest.raises(NotFound):
        cache.get(model_name, version + 1)

    # then: the process answers again after an error
    assert cache.get(model_name, version).feature_names[:2] == ["temperature_c", "humidity_pct"]


def test_the_child_process_restarts_after_it_exits(train, model_name):
    # given: the child exited (idle, or killed)
    version = train()["registered_version"]
    registry = model_cache().registry.child
    assert registry.version_number(name=model_name, version="latest") == version
    registry.process.close()

    # when
    number = registry.version_number(name=model_name, version="latest")

    # then
    assert number == version
