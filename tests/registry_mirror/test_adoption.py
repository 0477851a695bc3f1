"""Changes made straight in MLflow: found by the sync as *external*, served only once a maintainer adopts the
version (``POST /models/<name>/versions/<v>/adopt``) or accepts the alias (``.../aliases/<alias>/accept``)."""

import importlib
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib.messages import get_messages

from registry_mirror import gateway, selectors
from registry_mirror.models import AliasMove, ModelVersion, RegisteredModel, ServedAlias, TrainedVersion
from registry_mirror.services import registry_mirror_sync
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    StaffUserFactory,
    UserFactory,
    csv_bytes,
    mlflow_constant_version,
    served_version_record,
    weather_frame,
)

VERSIONS = "/admin/registry_mirror/modelversion/"


@pytest.fixture
def maintainer(role_client):
    return role_client("maintainer")


@pytest.fixture
def rogue_champion(train, model_name):
    """MDS trained version 1 (champion); version 2, a constant model, was registered straight in MLflow and
    ``@champion`` moved to it there; a sync has seen both."""
    ours = train()["registered_version"]
    rogue = mlflow_constant_version(model_name)
    gateway.model_alias_set(name=model_name, alias="champion", version=rogue)
    registry_mirror_sync(model_name=model_name)
    return ours, rogue


def predict(client, model_name, **query):
    url = "/predict?" + urlencode({"model_name": model_name, **query})
    return client.post(url, csv_bytes(weather_frame(3)), content_type="text/csv")


def test_the_sync_records_the_external_version_and_alias_move_and_serving_is_unchanged(rogue_champion, model_name):
    # given
    ours, rogue = rogue_champion

    # then: the history shows the move as external, MDS's record still names its own version
    move = AliasMove.objects.filter(model_name=model_name, source=AliasMove.Source.EXTERNAL).get()
    assert (move.alias, move.from_version, move.to_version, move.moved_by) == ("champion", ours, rogue, None)
    assert selectors.served_aliases_of(name=model_name) == {"champion": ours}
    assert RegisteredModel.objects.get(name=model_name).aliases == {"champion": rogue}
    assert selectors.version_origins(name=model_name) == {ours: "trained"}


def test_only_a_maintainer_adopts_and_the_adopted_version_serves_as_onnx_only(
    rogue_champion, model_name, maintainer, role_client, api_client
):
    # given
    ours, rogue = rogue_champion
    url = f"/models/{model_name}/versions/{rogue}/adopt"

    # when
    by_trainer = role_client("trainer").post(url)
    by_predictor = role_client("predictor").post(url)
    before = predict(api_client, model_name, version=rogue)
    adopted = maintainer.post(url)
    again = maintainer.post(url)
    onnx = predict(api_client, model_name, version=rogue)
    sklearn = predict(api_client, model_name, version=rogue, format="sklearn")
    champion = predict(api_client, model_name)

    # then
    assert by_trainer.status_code == by_predictor.status_code == 403
    assert before.status_code == 409 and before.json()["code"] == "version_not_adopted"
    assert adopted.status_code == 201
    assert adopted.json()["served"] == "adopted" and adopted.json()["adopted"] is True
    assert again.status_code == 200 and again.json()["adopted"] is False
    record = TrainedVersion.objects.get(name=model_name, version=rogue)
    assert (record.origin, record.sklearn_sha256, record.job_key) == ("adopted", "", None)
    assert record.adopted_by.username == adopted.json()["adopted_by"] and record.adopted_at is not None
    assert onnx.status_code == 200 and onnx.json()["predictions"] == [1337.0] * 3
    assert sklearn.status_code == 409 and sklearn.json()["code"] == "untrusted_artifact"
    # adopting a version serves it by number, and moves no alias
    assert champion.status_code == 200 and champion["X-Model-Version"] == str(ours)


def test_adopting_a_trained_or_unknown_version_or_one_of_other_features_is_answered_clearly(
    train, model_name, maintainer
):
    # given
    ours = train()["registered_version"]
    other_features = mlflow_constant_version(model_name, drop_feature="humidity_pct")

    # when
    trained = maintainer.post(f"/models/{model_name}/versions/{ours}/adopt")
    mismatch = maintainer.post(f"/models/{model_name}/versions/{other_features}/adopt")
    unknown = maintainer.post(f"/models/{model_name}/versions/99/adopt")
    bad_name = maintainer.post("/models/bad%20name/versions/1/adopt")

    # then
    assert trained.status_code == 200 and trained.json()["served"] == "trained"
    assert mismatch.status_code == 409 and mismatch.json()["code"] == "signature_mismatch"
    assert "humidity_pct" in str(mismatch.json()["extra"]["expected_features"])
    assert unknown.status_code == 404 and bad_name.status_code == 404
    assert not TrainedVersion.objects.filter(name=model_name, version=other_features).exists()


def test_accepting_the_external_alias_goes_through_the_gate_and_then_serves_it(
    rogue_champion, model_name, maintainer, api_client
):
    # given
    ours, rogue = rogue_champion
    url = f"/models/{model_name}/aliases/champion/accept"

    # when
    not_adopted = maintainer.post(url, {}, format="json")
    maintainer.post(f"/models/{model_name}/versions/{rogue}/adopt")
    gated = maintainer.post(url, {}, format="json")
    forced = maintainer.post(url, {"force": True}, format="json")
    served = predict(api_client, model_name)

    # then: refused until adopted; its run has no holdout RMSE, so the gate asks for force
    assert not_adopted.status_code == 409 and not_adopted.json()["code"] == "version_not_adopted"
    assert gated.status_code == 409 and gated.json()["code"] == "unknown_rmse"
    assert forced.status_code == 200
    assert forced.json() == {
        "model_name": model_name,
        "alias": "champion",
        "version": rogue,
        "previous_version": ours,
        "moved": True,
        "forced": True,
    }
    assert selectors.served_aliases_of(name=model_name) == {"champion": rogue}
    move = AliasMove.objects.filter(model_name=model_name).first()
    assert (move.source, move.from_version, move.to_version) == (AliasMove.Source.ACCEPTED, ours, rogue)
    assert served.status_code == 200 and served["X-Model-Version"] == str(rogue)
    assert served.json()["predictions"] == [1337.0] * 3


def test_a_trainer_cannot_accept_an_alias(rogue_champion, model_name, role_client):
    # when
    response = role_client("trainer").post(f"/models/{model_name}/aliases/champion/accept", {}, format="json")

    # then
    assert response.status_code == 403
    assert selectors.served_aliases_of(name=model_name) == {"champion": rogue_champion[0]}


def test_setting_an_alias_on_an_unadopted_version_is_refused(rogue_champion, model_name, maintainer):
    # given
    ours, rogue = rogue_champion

    # when
    response = maintainer.post(f"/models/{model_name}/aliases/staging", {"version": rogue}, format="json")

    # then
    assert response.status_code == 409 and response.json()["code"] == "version_not_adopted"
    assert "staging" not in gateway.model_aliases(name=model_name)


def test_the_admin_shows_external_changes_and_adopts_and_accepts_them(rogue_champion, model_name, client):
    # given
    ours, rogue = rogue_champion
    client.force_login(StaffUserFactory())
    version = ModelVersion.objects.get(name=model_name, version=rogue)
    page_url = f"{VERSIONS}{version.pk}/change/"

    # when
    external = client.get(page_url).content.decode()
    listing = client.get(f"{VERSIONS}?registered_model__id__exact={version.registered_model_id}").content.decode()
    adopted = client.post(f"{VERSIONS}{version.pk}/adopt/", follow=True)
    accepted = client.post(f"{VERSIONS}{version.pk}/alias/accept/", {"alias": "champion", "force": "1"}, follow=True)
    after = client.get(page_url).content.decode()

    # then
    assert "External, not served until adopted" in external and 'id="adopt-version"' in external
    assert "(external, not served)" in external and 'id="accept-alias-champion"' in external
    assert "Made directly in MLflow (not served)" in external
    assert "external, not served until adopted" in listing and "Trained by MDS" in listing
    messages = [str(m) for m in get_messages(adopted.wsgi_request)]
    messages += [str(m) for m in get_messages(accepted.wsgi_request)]
    assert f"{model_name} v{rogue} adopted: MDS serves it now (as ONNX)." in messages
    assert f"@champion of {model_name} now serves v{rogue}, forced past the RMSE gate." in messages
    assert "adopted by a maintainer" in after and 'id="adopt-version"' not in after
    assert selectors.served_aliases_of(name=model_name) == {"champion": rogue}


def test_a_staff_trainer_cannot_adopt_in_the_admin(rogue_champion, model_name, client):
    # given
    client.force_login(UserFactory(role="trainer", is_staff=True))
    version = ModelVersion.objects.get(name=model_name, version=rogue_champion[1])

    # when
    page = client.get(f"{VERSIONS}{version.pk}/change/")
    adopt = client.post(f"{VERSIONS}{version.pk}/adopt/")
    accept = client.post(f"{VERSIONS}{version.pk}/alias/accept/", {"alias": "champion"})

    # then
    assert page.status_code == 200 and b'id="adopt-version"' not in page.content
    assert adopt.status_code == accept.status_code == 403
    assert not TrainedVersion.objects.filter(name=model_name, version=rogue_champion[1]).exists()


@pytest.mark.django_db
def test_the_migration_fills_the_promotion_record_from_the_mirror_for_trained_versions_only():
    # given: champion on a trained version, staging on one registered outside MDS
    model = RegisteredModelFactory(name="weather", aliases={"champion": 1, "staging": 2})
    ModelVersionFactory(registered_model=model, version=1, aliases=["champion"])
    ModelVersionFactory(registered_model=model, version=2, aliases=["staging"])
    served_version_record("weather", 1)
    migration = importlib.import_module("registry_mirror.migrations.0005_served_aliases_and_adoption")

    # when
    migration.served_aliases_fill(apps, None)
    migration.served_aliases_fill(apps, None)

    # then
    assert list(ServedAlias.objects.values_list("model_name", "alias", "version")) == [("weather", "champion", 1)]
