"""The registry mirror in the Django admin: read-only pages for staff, the sync button, aliases and plots."""

import re

import pytest
from django.contrib.messages import get_messages

from registry_mirror import admin_parts, gateway, selectors
from registry_mirror.models import AliasMove, ModelVersion, RegisteredModel
from registry_mirror.services import model_alias_set, registry_mirror_sync
from tests.factories import ModelVersionFactory, RegisteredModelFactory, StaffUserFactory, UserFactory, mlflow_version

pytestmark = pytest.mark.django_db

VERSIONS = "/admin/registry_mirror/modelversion/"


@pytest.fixture
def staff_client(client):
    client.force_login(StaffUserFactory())
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.mark.parametrize(
    "url",
    [
        VERSIONS,
        "/admin/registry_mirror/registeredmodel/",
        "/admin/registry_mirror/aliasmove/",
        "/admin/registry_mirror/modelversion/{pk}/change/",
        "/admin/registry_mirror/modelversion/{pk}/plots/predicted_vs_actual.png",
    ],
)
def test_every_mirror_page_renders_for_staff_and_sends_others_to_the_login(client, url):
    # given
    version = ModelVersionFactory(run_id="")
    url = url.format(pk=version.pk)

    # when
    anonymous = client.get(url)
    client.force_login(UserFactory())
    not_staff = client.get(url)
    client.force_login(StaffUserFactory())
    staff = client.get(url)

    # then
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert not_staff.status_code == 302 and not_staff["Location"].startswith("/admin/login/")
    # a version without a run has no plot to show
    assert staff.status_code == (404 if url.endswith(".png") else 200)
    if url.endswith("/registry_mirror/modelversion/"):
        assert b'id="mirror-sync"' in staff.content


def test_the_version_list_filters_by_model_alias_status_and_format_and_searches_run_and_dataset(staff_client):
    # given
    champion = ModelVersionFactory(aliases=["champion"], run_id="abc123" + "0" * 26, dataset_sha256="f" * 64)
    RegisteredModel.objects.filter(pk=champion.registered_model_id).update(aliases={"champion": champion.version})
    sklearn_only = ModelVersionFactory(formats=["sklearn"], status=ModelVersion.Status.FAILED_REGISTRATION)
    other_model = ModelVersionFactory(registered_model=RegisteredModelFactory())

    def listed(query: str) -> set[int]:
        response = staff_client.get(f"{VERSIONS}?{query}")
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    # when / then
    assert listed("alias=champion") == {champion.pk}
    assert listed("format=onnx") == {champion.pk, other_model.pk}
    assert listed("status__exact=FAILED_REGISTRATION") == {sklearn_only.pk}
    assert listed(f"registered_model__id__exact={other_model.registered_model_id}") == {other_model.pk}
    assert listed("q=abc123") == {champion.pk}
    assert listed(f"q={'f' * 12}") == {champion.pk}


def test_the_version_page_shows_metrics_params_origin_plots_and_mlflow_links(
    staff_client, train, model_name, settings
):
    # given
    settings.MLFLOW_UI_URL = "http://mlflow.example:5000"
    job = train()
    version = ModelVersion.objects.get(name=model_name)

    # when
    page = staff_client.get(f"{VERSIONS}{version.pk}/change/")
    plot = staff_client.get(f"{VERSIONS}{version.pk}/plots/feature_importances.png")

    # then
    html = page.content.decode()
    assert page.status_code == 200
    assert "<tr><td>n_estimators</td><td>10</td></tr>" in html
    assert (
        f"http://mlflow.example:5000/#/experiments/{version.experiment_id}/runs/{version.run_id}?workflowType=machine_learning"
        in html
    )
    assert f"http://mlflow.example:5000/#/models/{model_name}/versions/1?workflowType=machine_learning" in html
    # nothing answers there: the links say so
    assert "MLflow: run (not running)" in html
    assert f"/admin/training/trainingjob/{job['id']}/change/" in html
    assert f"{VERSIONS}{version.pk}/plots/predicted_vs_actual.png" in html
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png"
    assert plot.content.startswith(b"\x89PNG")
    # each plot shows its own title: no caption repeats it
    assert "<figcaption>" not in html


def test_the_version_page_names_and_rounds_the_metrics_and_flags_only_a_deleted_version(staff_client):
    # given
    metrics = {"r2": 0.6215178476734462, "mae": 77.46666666666677, "rmse": 109.64189755745757, "n_test": 24.0}
    version = ModelVersionFactory(metrics=metrics, r2=metrics["r2"], mae=metrics["mae"], rmse=metrics["rmse"])
    deleted = ModelVersionFactory(deleted=True)

    # when
    html = staff_client.get(f"{VERSIONS}{version.pk}/change/").content.decode()
    deleted_html = staff_client.get(f"{VERSIONS}{deleted.pk}/change/").content.decode()
    listing = staff_client.get(VERSIONS).content.decode()

    # then: the holdout metrics and the run's table, as a data scientist names them, to four digits
    for label, value in [("R²", "0.6215"), ("MAE", "77.47"), ("RMSE", "109.6")]:
        assert re.search(rf"<label>{label}:</label>\s*<div class=\"readonly\">{value}</div>", html)
        assert f"<tr><td>{label}</td><td>{value}</td></tr>" in html
    assert "<tr><td>holdout rows</td><td>24</td></tr>" in html
    assert re.search(r'class="sortable column-holdout_r2">.*?<a href="[^"]*">R²</a>', listing, re.DOTALL)
    assert re.search(r'class="sortable column-holdout_rmse">.*?<a href="[^"]*">RMSE</a>', listing, re.DOTALL)
    assert '<td class="field-holdout_r2">0.6215</td>' in listing
    assert "0.6215178" not in html and "Rmse" not in html and "Mae" not in html
    # no red cross for a version that is not deleted; a deleted one says so
    assert re.search(r"<label>Deleted in MLflow:</label>\s*<div class=\"readonly\">no</div>", html)
    assert re.search(r"<label>Deleted in MLflow:</label>\s*<div class=\"readonly\">yes", deleted_html)
    assert "icon-no.svg" not in html + listing


def test_mirror_rows_cannot_be_added_changed_or_deleted_in_the_admin(staff_client):
    # given
    version = ModelVersionFactory()

    # when
    add = staff_client.get(f"{VERSIONS}add/")
    change = staff_client.post(f"{VERSIONS}{version.pk}/change/", {"status": "FAILED_REGISTRATION"})
    delete = staff_client.post(f"{VERSIONS}{version.pk}/delete/", {"post": "yes"})

    # then
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    version.refresh_from_db()
    assert version.status == "READY"


def test_the_sync_button_mirrors_mlflow(staff_client, mlflow_store):
    # given
    mlflow_version("weather")

    # when
    response = staff_client.post(f"{VERSIONS}sync/", follow=True)

    # then
    assert response.status_code == 200
    assert any(message.startswith("Synced from MLflow") for message in messages_of(response))
    assert ModelVersion.objects.filter(name="weather", version=1).exists()


def test_the_sync_button_shows_an_error_and_changes_nothing_when_mlflow_is_down(
    staff_client, mlflow_store, mlflow_down
):
    # given
    mlflow_version("weather")
    registry_mirror_sync()
    mlflow_down()

    # when
    response = staff_client.post(f"{VERSIONS}sync/", follow=True)

    # then
    assert response.status_code == 200
    assert any("Sync failed, the mirror is unchanged: MLflow is unreachable" in m for m in messages_of(response))
    assert ModelVersion.objects.count() == 1


def test_anonymous_users_cannot_sync_or_set_aliases(client):
    # given
    version = ModelVersionFactory()

    # when
    sync = client.post(f"{VERSIONS}sync/")
    alias = client.post(f"{VERSIONS}{version.pk}/alias/", {"alias": "champion"})

    # then
    assert sync.status_code == alias.status_code == 302
    assert not AliasMove.objects.exists()


@pytest.mark.parametrize("action", ["sync/", "{pk}/alias/", "{pk}/alias/remove/"])
def test_the_admin_write_views_take_only_a_post_from_a_user_with_the_permission(client, action):
    # given
    version = ModelVersionFactory()
    url = VERSIONS + action.format(pk=version.pk)
    client.force_login(UserFactory(is_staff=True))

    # when
    read = client.get(url)
    write = client.post(url, {"alias": "champion"})

    # then
    assert (read.status_code, write.status_code) == (405, 403)
    assert not AliasMove.objects.exists()


@pytest.mark.parametrize("object_id", ["abc", "1.5", "99999999999999999999999"])
def test_a_version_id_that_is_not_one_is_404_on_the_alias_and_plot_urls(staff_client, object_id):
    # given
    ModelVersionFactory()

    # when
    alias = staff_client.post(f"{VERSIONS}{object_id}/alias/", {"alias": "champion"})
    plot = staff_client.get(f"{VERSIONS}{object_id}/plots/feature_importances.png")

    # then
    assert alias.status_code == plot.status_code == 404
    assert not AliasMove.objects.exists()


def test_the_alias_form_moves_the_alias_in_mlflow_and_audits_it(staff_client, mlflow_store):
    # given
    mlflow_version("weather", served=True)
    mlflow_version("weather", served=True)
    model_alias_set(name="weather", alias="champion", version=1, user=None)
    registry_mirror_sync()
    second = ModelVersion.objects.get(version=2)

    # when
    response = staff_client.post(f"{VERSIONS}{second.pk}/alias/", {"alias": "champion"}, follow=True)

    # then
    assert "@champion now points at weather v2 (moved from v1)." in messages_of(response)
    assert int(gateway.client().get_model_version_by_alias("weather", "champion").version) == 2
    move = AliasMove.objects.first()
    assert (move.from_version, move.to_version, move.moved_by.is_staff) == (1, 2, True)
    assert "champion" in response.content.decode()
    assert selectors.served_aliases_of(name="weather") == {"champion": 2}


def test_a_refused_alias_changes_nothing(staff_client, mlflow_store):
    # given
    mlflow_version("weather")
    registry_mirror_sync()
    version = ModelVersion.objects.get()

    # when
    bad_name = staff_client.post(f"{VERSIONS}{version.pk}/alias/", {"alias": "no spaces"}, follow=True)
    reserved = staff_client.post(f"{VERSIONS}{version.pk}/alias/", {"alias": "latest"}, follow=True)

    # then
    assert messages_of(bad_name)[0].startswith("Alias not set: A letter, then letters, digits")
    assert messages_of(reserved)[0].startswith("Alias not set:")
    assert gateway.client().get_registered_model("weather").aliases == {}
    assert not AliasMove.objects.exists() and ModelVersion.objects.get().aliases == []


def test_large_version_lists_count_no_further_than_the_cap(staff_client, monkeypatch):
    # given
    monkeypatch.setattr(admin_parts.CappedCountPaginator, "CAP", 60)
    model = RegisteredModelFactory()
    ModelVersion.objects.bulk_create(
        ModelVersionFactory.build(registered_model=model, name=model.name, version=n) for n in range(1, 81)
    )

    # when
    response = staff_client.get(VERSIONS)

    # then
    assert response.status_code == 200
    assert response.context["cl"].paginator.count == 60
    assert len(response.context["cl"].result_list) == 50


def test_a_version_logged_with_its_plots_on_the_run_still_shows_them(staff_client, mlflow_store, tmp_path):
    # given: a version whose run holds the plots, as MDS logged them before they moved to the logged model
    version = mlflow_version("weather")
    plot = tmp_path / "predicted_vs_actual.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n a plot")
    gateway.client().log_artifact(version.run_id, str(plot), "plots")
    registry_mirror_sync()

    # when
    response = staff_client.get(f"{VERSIONS}{ModelVersion.objects.get().pk}/plots/predicted_vs_actual.png")

    # then
    assert response.status_code == 200 and response.content == plot.read_bytes()


def test_a_plot_the_run_does_not_have_is_404_and_an_unreachable_mlflow_is_503(staff_client, mlflow_store, mlflow_down):
    # given: a version registered outside MDS, whose run logged no plots
    mlflow_version("weather")
    registry_mirror_sync()
    url = f"{VERSIONS}{ModelVersion.objects.get().pk}/plots/predicted_vs_actual.png"

    # when
    missing = staff_client.get(url)
    mlflow_down()
    unreachable = staff_client.get(url)

    # then
    assert missing.status_code == 404
    assert unreachable.status_code == 503 and b"MLflow is unreachable" in unreachable.content


def test_the_admin_applies_the_rmse_gate_forces_past_it_and_removes_aliases(staff_client, mlflow_store):
    # given: champion on a good version, a much worse second one
    mlflow_version("weather", metrics={"rmse": 10.0}, served=True)
    mlflow_version("weather", metrics={"rmse": 20.0}, served=True)
    model_alias_set(name="weather", alias="champion", version=1, user=None)
    registry_mirror_sync()
    second = ModelVersion.objects.get(version=2)
    url = f"{VERSIONS}{second.pk}/alias/"

    # when
    refused = staff_client.post(url, {"alias": "champion"}, follow=True)
    forced = staff_client.post(url, {"alias": "champion", "force": "1"}, follow=True)
    removed = staff_client.post(f"{VERSIONS}{second.pk}/alias/remove/", {"alias": "champion"}, follow=True)

    # then
    assert messages_of(refused)[0].startswith("Alias not set: Version 2 of 'weather' has a holdout RMSE of 20")
    assert "@champion now points at weather v2 (moved from v1), forced past the RMSE gate." in messages_of(forced)
    assert "@champion removed from weather." in messages_of(removed)
    assert gateway.model_aliases(name="weather") == {}
    moves = list(AliasMove.objects.order_by("id").values_list("from_version", "to_version", "forced", "source"))
    assert moves[-2:] == [(1, 2, True, "admin"), (2, None, False, "admin")]
    assert ModelVersion.objects.get(version=2).aliases == [] and RegisteredModel.objects.get().aliases == {}


def test_a_staff_trainer_cannot_move_or_remove_aliases_in_the_admin(client, mlflow_store):
    # given
    mlflow_version("weather", served=True)
    model_alias_set(name="weather", alias="champion", version=1, user=None)
    registry_mirror_sync()
    version = ModelVersion.objects.get()
    client.force_login(UserFactory(role="trainer", is_staff=True))

    # when
    page = client.get(f"{VERSIONS}{version.pk}/change/")
    moved = client.post(f"{VERSIONS}{version.pk}/alias/", {"alias": "staging"})
    removed = client.post(f"{VERSIONS}{version.pk}/alias/remove/", {"alias": "champion"})

    # then: the trainer reads the page, without the alias form
    assert page.status_code == 200 and b'id="set-alias"' not in page.content
    assert moved.status_code == removed.status_code == 403
    assert gateway.model_aliases(name="weather") == {"champion": 1}
