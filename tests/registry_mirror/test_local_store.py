"""The embedded store read without MLflow (``gateway.local_store``) agrees with the MLflow client's reads, and
reads only what MLflow's own schema defines."""

import pytest

from core import contract
from core.errors import NotFound
from registry_mirror import gateway
from registry_mirror.gateway import local_store


def test_local_reads_match_the_mlflow_client(train, model_name, tmp_path, monkeypatch):
    # given: a trained version
    first = train()["registered_version"]
    files = {"files": [contract.ONNX_FILE], "optional": (contract.INTERVALS_FILE,)}

    # when: read by the local reader, then by the MLflow client (the reader stood aside)
    assert local_store.model_version(model_name, first) is not None  # the reader serves it
    local = gateway.model_version_fetch(name=model_name, version=first, dst=str(tmp_path / "a"), **files)
    monkeypatch.setattr(local_store, "model_version", lambda name, number: None)
    client = gateway.model_version_fetch(name=model_name, version=first, dst=str(tmp_path / "b"), **files)

    # then
    for key in ("feature_names", "tags", "metrics"):
        assert local[key] == client[key]
    assert local["metrics"]  # the ONNX parity
    assert set(local["paths"]) == set(client["paths"]) == {contract.ONNX_FILE, contract.INTERVALS_FILE}
    for file, path in local["paths"].items():
        assert open(path, "rb").read() == open(client["paths"][file], "rb").read()


def test_what_the_local_reader_does_not_have_is_left_to_mlflow(train, model_name, tmp_path):
    # given
    version = train()["registered_version"]

    # when / then: None, so the MLflow client answers (and words the 404)
    assert local_store.model_version(model_name, version + 1) is None
    with pytest.raises(NotFound):
        gateway.model_version_fetch(name=model_name, version=version + 1, files=[], dst=str(tmp_path))


def test_the_reader_reads_only_what_mlflows_schema_defines():
    # given: MLflow's own definition of its SQL store
    from mlflow.entities.model_registry.model_version_stages import STAGE_DELETED_INTERNAL
    from mlflow.store.db.base_sql_model import Base
    from mlflow.store.model_registry.dbmodels import models as registry_models  # noqa: F401 (defines the tables)
    from mlflow.store.tracking.dbmodels import models as tracking_models  # noqa: F401

    # when
    defined = {name: {column.name for column in table.columns} for name, table in Base.metadata.tables.items()}

    # then: every table and column the reader queries exists there, and a deleted version is marked as it expects
    for table, columns in local_store.TABLES.items():
        assert set(columns) <= defined.get(table, set()), table
    assert local_store.DELETED_STAGE == STAGE_DELETED_INTERNAL
