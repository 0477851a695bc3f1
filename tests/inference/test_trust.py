"""Serving trusts our database, not MLflow: checksums recorded at training decide what is loaded."""

import pickle
from pathlib import Path
from urllib.parse import urlencode

import pytest

from core import contract
from inference.model_cache import model_cache
from registry_mirror import gateway
from registry_mirror.models import TrainedVersion
from registry_mirror.services import registry_mirror_sync
from tests.factories import csv_bytes, mlflow_constant_version, weather_frame


def post(api_client, model_name, version, model_format):
    url = f"/predict?model_name={model_name}&version={version}&format={model_format}"
    return api_client.post(url, csv_bytes(weather_frame(3)), content_type="text/csv")


def artifact(settings, model_name: str, version: int, file: str) -> Path:
    (model_id,) = [
        v.model_id for v in gateway.model_versions_page(page_size=100, name=model_name).items if v.version == version
    ]
    artifacts = Path(settings.MLFLOW_ARTIFACT_ROOT.removeprefix("file://"))
    (path,) = artifacts.glob(f"**/{model_id}/artifacts/{file}")
    return path


class Planted:
    """A pickle that runs code when loaded: what an attacker with write access to MLflow would plant."""

    def __reduce__(self):
        return (Path("/tmp/mds-planted-pickle-ran").touch, ())


def test_training_records_both_checksums_in_the_database(train, model_name, settings):
    # when
    version = train()["registered_version"]

    # then
    record = TrainedVersion.objects.get(name=model_name, version=version)
    assert record.onnx_sha256 == gateway.file_sha256(artifact(settings, model_name, version, contract.ONNX_FILE))
    assert record.sklearn_sha256 == gateway.file_sha256(artifact(settings, model_name, version, contract.SKLEARN_FILE))


def test_a_planted_pickle_with_a_matching_mlflow_tag_is_never_unpickled(train, api_client, model_name, settings):
    # given: the pickle replaced in the artifact store, and the version's MLflow tag rewritten to its checksum
    version = train()["registered_version"]
    pickle_path = artifact(settings, model_name, version, contract.SKLEARN_FILE)
    pickle_path.write_bytes(pickle.dumps(Planted()))
    client = gateway.client()
    client.set_model_version_tag(
        model_name, str(version), contract.SKLEARN_SHA256_TAG, gateway.file_sha256(pickle_path)
    )
    Path("/tmp/mds-planted-pickle-ran").unlink(missing_ok=True)

    # when
    sklearn = post(api_client, model_name, version, "sklearn")
    auto = post(api_client, model_name, version, "auto")

    # then
    assert sklearn.status_code == 409 and sklearn.json()["code"] == "untrusted_artifact"
    assert auto.status_code == 200 and auto.json()["model"]["format"] == "onnx"
    assert not Path("/tmp/mds-planted-pickle-ran").exists()


def test_a_tampered_onnx_file_is_refused(train, api_client, model_name, settings):
    # given
    version = train()["registered_version"]
    with open(artifact(settings, model_name, version, contract.ONNX_FILE), "ab") as handle:
        handle.write(b"\x00")

    # when
    response = post(api_client, model_name, version, "onnx")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "untrusted_artifact"
    assert response.json()["extra"]["file"] == contract.ONNX_FILE


@pytest.mark.parametrize("model_format", ["onnx", "sklearn", "auto"])
def test_a_version_this_service_did_not_train_is_not_served(train, api_client, model_name, model_format):
    # given: a version whose record is gone, as for one registered straight into MLflow
    version = train()["registered_version"]
    TrainedVersion.objects.filter(name=model_name).delete()
    registry_mirror_sync(model_name=model_name)

    # when
    response = post(api_client, model_name, version, model_format)

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "version_not_adopted"
    assert f"/models/{model_name}/versions/{version}/adopt" in response.json()["message"]


def test_an_mlflow_registered_version_and_alias_serve_nothing(train, api_client, model_name, monkeypatch):
    # given: MDS's version 1 is champion; a constant version registered straight in MLflow, and @champion moved
    # to it there
    ours = train()["registered_version"]
    rogue = mlflow_constant_version(model_name)
    gateway.model_alias_set(name=model_name, alias="champion", version=rogue)
    registry_mirror_sync(model_name=model_name)
    rows = csv_bytes(weather_frame(3))

    def predict(**query):
        url = "/predict?" + urlencode({"model_name": model_name, **query})
        return api_client.post(url, rows, content_type="text/csv")

    # when
    by_number = predict(version=rogue)
    plain, latest, champion = predict(), predict(version="latest"), predict(version="@champion")
    # the alias TTL runs out (and the cache is emptied): nothing is asked of MLflow either way
    monkeypatch.setattr(model_cache(), "alias_ttl", 0.0)
    model_cache().clear()
    after_ttl, latest_after_ttl = predict(), predict(version="latest")

    # then
    assert by_number.status_code == 409
    assert by_number.json()["code"] == "version_not_adopted"
    assert by_number.json()["extra"]["version"] == rogue
    for response in (plain, latest, champion, after_ttl, latest_after_ttl):
        assert response.status_code == 200, response.json()
        assert response["X-Model-Version"] == str(ours)
        assert 1337.0 not in response.json()["predictions"]


def test_drift_and_performance_of_an_unadopted_version_are_refused(train, api_client, model_name):
    # given
    train()
    rogue = mlflow_constant_version(model_name)
    registry_mirror_sync(model_name=model_name)

    # when
    answers = [api_client.get(f"/models/{model_name}/versions/{rogue}/{what}") for what in ("drift", "performance")]

    # then
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(409, "version_not_adopted")] * 2


@pytest.mark.parametrize("model_format", ["sklearn", "auto"])
def test_a_tampered_pickle_is_refused_or_skipped_by_auto(train, api_client, model_name, settings, model_format):
    # given
    version = train()["registered_version"]
    settings.MDS_AUTO_SKLEARN_MIN_ROWS = 1
    with open(artifact(settings, model_name, version, contract.SKLEARN_FILE), "ab") as handle:
        handle.write(b"tampered")

    # when
    response = post(api_client, model_name, version, model_format)

    # then
    if model_format == "sklearn":
        assert response.status_code == 409 and response.json()["code"] == "untrusted_artifact"
    else:
        assert response.status_code == 200 and response.json()["model"]["format"] == "onnx"
