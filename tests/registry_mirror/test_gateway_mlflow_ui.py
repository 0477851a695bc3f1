"""What the MLflow UI shows of MDS's work, read back from a real MLflow server: the experiment opens in the
model-development view, and each run lists the model it logged, with both formats.

The run page's Artifacts tab shows the files of the run's first output model when the run has no artifacts of its
own (the UI's ArtifactPage, ``isFallbackToLoggedModelArtifacts``): MDS logs the plots with the model for that."""

import uuid

from mlflow import MlflowClient
from mlflow.models import Model

from core import contract
from registry_mirror import gateway


def test_the_experiment_is_tagged_for_model_development_also_when_it_existed_before(settings, mlflow_server):
    # given: an experiment made before MDS tagged its experiments
    settings.MLFLOW_TRACKING_URI = mlflow_server
    settings.MLFLOW_EXPERIMENT_NAME = f"mds_{uuid.uuid4().hex[:8]}"
    mlflow = MlflowClient(tracking_uri=mlflow_server)
    existing = mlflow.create_experiment(settings.MLFLOW_EXPERIMENT_NAME)
    assert "mlflow.experimentKind" not in mlflow.get_experiment(existing).tags

    # when
    found = gateway.experiment_id()
    settings.MLFLOW_EXPERIMENT_NAME = f"mds_{uuid.uuid4().hex[:8]}"
    created = gateway.experiment_id()

    # then
    assert found == existing
    for experiment_id in (existing, created):
        assert mlflow.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_run_lists_the_model_it_logged_with_both_formats_and_shows_its_files(train, settings, mlflow_server):
    # given: MDS logging through the MLflow server, as in production and `make run`
    settings.MLFLOW_TRACKING_URI = mlflow_server

    # when
    job = train()

    # then: the run's outputs name the logged model, which names the run as its source and carries both flavors
    assert job["status"] == "success", job
    mlflow = MlflowClient(tracking_uri=mlflow_server)
    run = mlflow.get_run(job["mlflow_run_id"])
    (output,) = run.outputs.model_outputs
    logged = mlflow.get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id
    assert logged.experiment_id == run.info.experiment_id
    assert mlflow.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    mlmodel = Model.load(f"models:/{output.model_id}")
    assert {"sklearn", "onnx"} <= set(mlmodel.flavors)
    # the run has no artifacts of its own, so its Artifacts tab shows the model's: both formats and the plots
    assert mlflow.list_artifacts(run.info.run_id) == []
    files = {item.path for item in mlflow.list_logged_model_artifacts(output.model_id)}
    assert {"MLmodel", "model.pkl", "model.onnx", "plots"} <= files
    plots = {item.path for item in mlflow.list_logged_model_artifacts(output.model_id, "plots")}
    assert plots == {contract.plot_path(name) for name in contract.PLOTS}
