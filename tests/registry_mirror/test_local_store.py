"""The embedded store read without MLflow (``gateway.local_store``) agrees with the MLflow client's reads."""

import pytest

from core import contract
from core.errors import NotFound
from registry_mirror import gateway
from registry_mirror.gateway import local_store


def test_local_reads_match_the_mlflow_client(train, model_name, tmp_path, monkeypatch):
    # given: two versions, champion on the first
    first, second = train()["registered_version"], train()["registered_version"]
    gateway.model_alias_set(name=model_name, alias="champion", version=first)
    files = {"files": [contract.ONNX_FILE], "optional": (contract.INTERVALS_FILE,)}

    # when: read by the local reader, then by the MLflow client (the reader stood aside)
    local = {
        "numbers": [gateway.model_version_number(name=model_name, version=v) for v in ("@champion", "latest", "1")],
        "fetched": gateway.model_version_fetch(name=model_name, version=first, dst=str(tmp_path / "a"), **files),
    }
    assert local_store.model_version(model_name, str(first)) is not None  # the reader did serve those
    monkeypatch.setattr(local_store, "model_version", lambda name, version: None)
    client = {
        "numbers": [gateway.model_version_number(name=model_name, version=v) for v in ("@champion", "latest", "1")],
        "fetched": gateway.model_version_fetch(name=model_name, version=first, dst=str(tmp_path / "b"), **files),
    }

    # then
    assert local["numbers"] == client["numbers"] == [first, second, 1]
    for key in ("feature_names", "tags", "metrics"):
        assert local["fetched"][key] == client["fetched"][key]
    assert local["fetched"]["metrics"]  # the ONNX parity
    assert (
        set(local["fetched"]["paths"])
        == set(client["fetched"]["paths"])
        == {
            contract.ONNX_FILE,
            contract.INTERVALS_FILE,
        }
    )
    for file, path in local["fetched"]["paths"].items():
        assert open(path, "rb").read() == open(client["fetched"]["paths"][file], "rb").read()


@pytest.mark.parametrize("version", ["999", "@nobody", "latest"])
def test_what_the_local_reader_cannot_place_is_left_to_mlflow(train, model_name, version):
    # given: a model with versions, and one with none
    train()

    # when / then: None, so the MLflow client answers (and words the 404)
    assert local_store.model_version(model_name if version != "latest" else "no_such_model", version) is None
    with pytest.raises(NotFound):
        gateway.model_version_number(name=model_name if version != "latest" else "no_such_model", version=version)
