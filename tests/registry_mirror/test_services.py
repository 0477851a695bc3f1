"""The registry mirror sync and alias moves, against a real MLflow store (a fresh sqlite store per test)."""

import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core import contract
from core.errors import MlflowUnavailable
from registry_mirror import gateway, selectors
from registry_mirror.models import AliasMove, ModelVersion, RegisteredModel, ServedAlias
from registry_mirror.services import model_alias_set, registry_mirror_sync
from tests.factories import UserFactory, mlflow_version
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


def mirror_state() -> list[tuple]:
    """Every mirrored row as it stands, ``updated_at`` included, to compare before and after."""
    models = list(RegisteredModel.objects.order_by("name").values_list())
    versions = list(ModelVersion.objects.order_by("name", "version").values_list())
    return models + versions + list(AliasMove.objects.order_by("id").values_list())


def test_a_sync_mirrors_models_and_versions_with_their_run_data(mlflow_store):
    # given
    job_key = str(uuid.uuid4())
    mlflow_version(
        "weather",
        metrics={"r2": 0.9, "mae": 1.5, "rmse": 2.0, "onnx_max_abs_diff": 2e-5, "onnx_max_rel_diff": 1e-6},
        run_tags={"mds.dataset_sha256": "a" * 64, "mds.training_job": "7"},
        version_tags={contract.JOB_TAG: job_key, contract.SKLEARN_SHA256_TAG: "b" * 64, contract.ONNX_SHA256_TAG: "c"},
    )
    mlflow_version("weather")
    gateway.model_alias_set(name="weather", alias="champion", version=1)

    # when
    result = registry_mirror_sync()

    # then
    assert (result.models_created, result.versions_created, result.alias_moves) == (1, 2, 1)
    model = RegisteredModel.objects.get(name="weather")
    assert model.aliases == {"champion": 1} and not model.deleted
    first, second = ModelVersion.objects.filter(name="weather").order_by("version")
    assert (first.version, first.status, first.aliases, first.formats) == (
        1,
        "READY",
        ["champion"],
        ["onnx", "sklearn"],
    )
    assert (first.r2, first.mae, first.rmse, first.onnx_max_abs_diff) == (0.9, 1.5, 2.0, 2e-5)
    assert first.dataset_sha256 == "a" * 64 and str(first.job_key) == job_key
    assert first.run_id and first.experiment_id and first.mlflow_created_at
    assert second.aliases == [] and second.formats == [] and second.job_key is None
    assert AliasMove.objects.get().to_version == 1


def test_a_second_sync_changes_nothing(mlflow_store):
    # given
    mlflow_version("weather", metrics={"r2": 0.5})
    mlflow_version("wind")
    gateway.model_alias_set(name="wind", alias="champion", version=1)
    registry_mirror_sync()
    before = mirror_state()

    # when
    result = registry_mirror_sync()

    # then
    assert not result.changed
    assert mirror_state() == before


def test_non_finite_metrics_are_mirrored_as_unknown(mlflow_store):
    # given: MLflow keeps a NaN metric (an R² of a constant target, say); JSON has no NaN
    mlflow_version("weather", metrics={"r2": float("nan"), "mae": 1.5, "loss": float("nan")})

    # when
    result = registry_mirror_sync()

    # then
    assert result.versions_created == 1
    version = ModelVersion.objects.get(name="weather", version=1)
    assert version.metrics == {"r2": None, "mae": 1.5, "loss": None}
    assert (version.r2, version.mae) == (None, 1.5)
    assert not registry_mirror_sync().changed


def test_changes_made_in_mlflow_are_mirrored(mlflow_store):
    # given
    mlflow_version("weather")
    registry_mirror_sync()
    client = gateway.client()
    client.update_model_version("weather", "1", description="retrained on clean data")
    client.set_model_version_tag("weather", "1", "reviewed", "yes")
    client.update_registered_model("weather", description="Daily temperature")

    # when
    result = registry_mirror_sync()

    # then
    assert (result.versions_updated, result.models_updated, result.versions_created) == (1, 1, 0)
    version = ModelVersion.objects.get(name="weather", version=1)
    assert version.description == "retrained on clean data" and version.tags["reviewed"] == "yes"
    assert RegisteredModel.objects.get(name="weather").description == "Daily temperature"


def test_an_alias_moved_in_mlflow_is_mirrored_and_audited_as_external_and_serves_nothing(mlflow_store):
    # given: champion on version 1 set by MDS
    mlflow_version("weather", served=True)
    mlflow_version("weather", served=True)
    model_alias_set(name="weather", alias="champion", version=1, user=UserFactory())
    registry_mirror_sync()

    # when: someone moves it straight in MLflow
    gateway.model_alias_set(name="weather", alias="champion", version=2)
    result = registry_mirror_sync()

    # then: the mirror shows MLflow's view, the history marks the move external, and MDS still serves version 1
    assert (result.alias_moves, result.external_alias_moves) == (1, 1)
    aliases = dict(ModelVersion.objects.filter(name="weather").values_list("version", "aliases"))
    assert aliases == {1: [], 2: ["champion"]}
    move = AliasMove.objects.first()
    assert (move.alias, move.from_version, move.to_version, move.source, move.moved_by) == (
        "champion",
        1,
        2,
        AliasMove.Source.EXTERNAL,
        None,
    )
    assert selectors.served_aliases_of(name="weather") == {"champion": 1}
    assert selectors.served_version_number(name="weather", reference=contract.VersionRef(alias="champion")) == 1


def test_a_version_registered_in_mlflow_is_counted_as_external_by_the_sync(mlflow_store):
    # given
    mlflow_version("weather", served=True)
    mlflow_version("weather")

    # when
    result = registry_mirror_sync()

    # then
    assert (result.versions_created, result.versions_external) == (2, 1)
    assert selectors.version_origins(name="weather") == {1: "trained"}


def test_versions_and_models_deleted_in_mlflow_are_marked_deleted(mlflow_store):
    # given
    mlflow_version("weather")
    mlflow_version("weather")
    mlflow_version("wind")
    registry_mirror_sync()

    # when
    gateway.client().delete_model_version("weather", "1")
    gateway.client().delete_registered_model("wind")
    result = registry_mirror_sync()

    # then
    assert (result.versions_deleted, result.models_deleted) == (2, 1)
    deleted = ModelVersion.objects.filter(deleted=True).order_by("name").values_list("name", "version")
    assert list(deleted) == [("weather", 1), ("wind", 1)]
    assert ModelVersion.objects.get(name="weather", version=2).deleted is False
    assert RegisteredModel.objects.get(name="wind").deleted and RegisteredModel.objects.get(name="wind").deleted_at
    assert not registry_mirror_sync().changed


def test_a_sync_pages_through_a_registry_larger_than_one_page(mlflow_store, settings):
    # given: 260 versions over two models, listed 40 at a time
    settings.MDS_MIRROR_PAGE_SIZE = 40
    run_id = mlflow_version("big_a", metrics={"r2": 0.7}).run_id
    for _ in range(199):
        mlflow_version("big_a", run_id=run_id)
    for _ in range(60):
        mlflow_version("big_b", run_id=run_id)

    # when
    result = registry_mirror_sync()

    # then: 1 page of models, 7 pages of versions (6 full, one of 20)
    assert (result.versions_created, result.versions_seen, result.pages) == (260, 260, 8)
    assert ModelVersion.objects.filter(name="big_a").count() == 200
    assert sorted(ModelVersion.objects.filter(name="big_b").values_list("version", flat=True)) == list(range(1, 61))
    assert set(ModelVersion.objects.values_list("r2", flat=True)) == {0.7}
    assert not registry_mirror_sync().changed


def test_a_sync_while_mlflow_is_down_fails_cleanly_and_leaves_the_mirror_as_it_was(mlflow_store, mlflow_down):
    # given
    mlflow_version("weather", served=True)
    registry_mirror_sync()
    before = mirror_state()
    mlflow_down()

    # when
    with pytest.raises(MlflowUnavailable) as failure:
        registry_mirror_sync()

    # then
    assert "unreachable" in failure.value.message
    assert mirror_state() == before


def test_the_sync_command_reports_success_and_fails_with_a_message_when_mlflow_is_down(
    mlflow_store, mlflow_down, capsys
):
    # given
    mlflow_version("weather")

    # when
    call_command("sync_registry")

    # then
    assert "versions +1" in capsys.readouterr().out
    mlflow_down()
    with pytest.raises(CommandError, match="Registry sync failed, the mirror is unchanged: MLflow is unreachable"):
        call_command("sync_registry")


def test_setting_an_alias_writes_mlflow_then_the_mirror_and_audits_the_move(mlflow_store):
    # given
    user = UserFactory()
    mlflow_version("weather", served=True)
    mlflow_version("weather", served=True)
    registry_mirror_sync()
    first, second = ModelVersion.objects.order_by("version")

    # when
    model_alias_set(name="weather", alias="champion", version=first.version, user=user)
    move = model_alias_set(name="weather", alias="champion", version=second.version, user=user)

    # then
    assert int(gateway.client().get_model_version_by_alias("weather", "champion").version) == 2
    assert (move.from_version, move.to_version, move.moved_by, move.source) == (1, 2, user, AliasMove.Source.API)
    assert dict(ModelVersion.objects.values_list("version", "aliases")) == {1: [], 2: ["champion"]}
    assert RegisteredModel.objects.get().aliases == {"champion": 2}
    assert selectors.served_aliases_of(name="weather") == {"champion": 2}
    assert AliasMove.objects.count() == 2
    assert not registry_mirror_sync().changed


def test_setting_an_alias_while_mlflow_is_down_changes_nothing(mlflow_store, mlflow_down):
    # given
    mlflow_version("weather", served=True)
    registry_mirror_sync()
    before = mirror_state()
    mlflow_down()

    # when
    with pytest.raises(MlflowUnavailable):
        model_alias_set(name="weather", alias="champion", version=1, user=UserFactory())

    # then
    assert mirror_state() == before
    assert not ServedAlias.objects.exists()


def test_a_finished_training_syncs_its_version_into_the_mirror(train, model_name):
    # given / when
    job = TrainingJob.objects.select_related("dataset").get(pk=train()["id"])

    # then
    version = ModelVersion.objects.get(name=model_name, version=job.registered_version)
    assert version.job_key == job.key and version.dataset_sha256 == job.dataset.sha256
    assert version.formats == ["onnx", "sklearn"] and version.run_id == job.mlflow_run_id
    assert version.model_id == job.mlflow_model_id
    assert version.r2 == pytest.approx(job.metrics["r2"]) and version.onnx_max_abs_diff is not None
    assert version.params["n_estimators"] == "10"


def test_beat_runs_the_sync_task_periodically(settings):
    # given
    from mds_project.celery import app

    # when
    entry = settings.CELERY_BEAT_SCHEDULE["registry-mirror-sync"]

    # then
    assert entry["task"] in app.tasks and entry["schedule"] == settings.MDS_MIRROR_SYNC_INTERVAL
