"""The MLflow contract: one run and one registered version per training, carrying both formats."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
from django.conf import settings

from core import contract
from core.contract import VersionRef
from core.errors import NotFound
from registry_mirror import gateway
from tests.factories import weather_frame
from training.models import TrainingJob


@pytest.fixture
def global_mlflow_uri():
    """MLflow's own loaders read the process-global URI; point it at the test store for this test only."""
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    mlflow.set_registry_uri(settings.MLFLOW_TRACKING_URI)
    yield
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def test_one_version_loads_as_sklearn_and_as_onnx_and_both_agree(train, model_name, global_mlflow_uri):
    # given
    job = train()
    uri = f"models:/{model_name}/{job['registered_version']}"
    features = weather_frame(120).drop(columns=["timestamp", "target"])

    # when
    sklearn_model = mlflow.sklearn.load_model(uri)
    onnx_model = mlflow.onnx.load_model(uri)

    # then
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_pred = session.run(None, {"input": features.to_numpy(np.float32)})[0].ravel()
    sklearn_pred = sklearn_model.predict(features.to_numpy(np.float32))
    assert np.max(np.abs(onnx_pred - sklearn_pred) / np.abs(sklearn_pred)) <= 1e-4


def test_the_version_holds_one_logged_model_with_both_flavors(train, model_name, tmp_path):
    # given
    job = train()
    client = gateway.client()

    # when
    [version] = client.search_model_versions(f"name = '{model_name}'")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(model_name, version.version),
        dst_path=str(tmp_path),
        tracking_uri=settings.MLFLOW_TRACKING_URI,
    )
    mlmodel = mlflow.models.Model.load(f"{local}/MLmodel")

    # then
    assert {"sklearn", "onnx", "python_function"} <= mlmodel.flavors.keys()
    assert mlmodel.signature.inputs.input_names() == list(weather_frame(5).columns[1:-1])
    assert mlmodel.saved_input_example_info is not None
    stored_job = TrainingJob.objects.get(pk=job["id"])
    assert version.run_id == job["mlflow_run_id"]
    assert version.source == f"models:/{stored_job.mlflow_model_id}"
    assert version.tags[contract.JOB_TAG] == str(stored_job.key)
    assert version.tags[contract.SKLEARN_SHA256_TAG] == gateway.file_sha256(Path(local) / "model.pkl")
    assert version.tags[contract.ONNX_SHA256_TAG] == gateway.file_sha256(Path(local) / "model.onnx")


def test_the_run_records_params_metrics_dataset_and_its_model_holds_the_plots(train):
    # given
    job = train(random_state=5)
    client = gateway.client()

    # when
    run = client.get_run(job["mlflow_run_id"])
    model_id = TrainingJob.objects.get(pk=job["id"]).mlflow_model_id
    artifacts = {item.path for item in client.list_logged_model_artifacts(model_id, "plots")}

    # then
    assert run.info.status == "FINISHED"
    assert run.data.params["random_state"] == "5" and run.data.params["n_estimators"] == "10"
    assert run.data.params["target"] == "target" and run.data.params["timestamp"] == "timestamp"
    assert run.data.metrics["r2"] == pytest.approx(job["metrics"]["r2"])
    assert run.data.metrics["onnx_max_rel_diff"] <= 1e-4
    dataset = TrainingJob.objects.get(pk=job["id"]).dataset
    assert run.data.tags["mds.dataset_sha256"] == dataset.sha256
    assert run.data.tags["mds.dataset_size_bytes"] == str(dataset.size_bytes)
    assert artifacts == {
        "plots/predicted_vs_actual.png",
        "plots/feature_importances.png",
        "plots/residuals_over_time.png",
        "plots/backtest_error_by_fold.png",
    }


def test_resolving_versions_by_number_latest_and_alias(train, model_name):
    # given
    train(), train()
    gateway.client().set_registered_model_alias(model_name, "champion", "1")

    # when / then
    assert int(gateway.model_version_resolve(name=model_name, version=VersionRef.parse("2")).version) == 2
    assert int(gateway.model_version_resolve(name=model_name, version=VersionRef.parse("latest")).version) == 2
    assert int(gateway.model_version_resolve(name=model_name, version=VersionRef.parse("@champion")).version) == 1
    with pytest.raises(NotFound):
        gateway.model_version_resolve(name=model_name, version=VersionRef.parse("3"))
    with pytest.raises(NotFound):
        gateway.model_version_resolve(name="no_such_model", version=VersionRef.parse("latest"))


def test_concurrent_registrations_get_distinct_consecutive_versions(model_name):
    # given: three finished trainings registering into one model at the same moment
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from training import ml

    data = ml.prepare_data(weather_frame(60), target="target", timestamp="timestamp")
    result = ml.train(data, ml.TrainingParams(n_estimators=3))
    example = pd.DataFrame(result.X_test[:2].astype("float64"), columns=result.feature_names)

    def register(key: str) -> int:
        model = gateway.TrainedModel(result.estimator, result.onnx_model, example, params={}, metrics={})
        return gateway.model_version_register(job_key=key, model_name=model_name, model=model).version

    # when
    with ThreadPoolExecutor(max_workers=3) as pool:
        versions = list(pool.map(register, ["job-a", "job-b", "job-c"]))

    # then
    assert sorted(versions) == [1, 2, 3]
