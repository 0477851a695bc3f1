"""Models have owners: who may train new versions of a model, at the API, in the admin and in the worker."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group

from registry_mirror.models import RegisteredModel, TrainedVersion
from registry_mirror.services import model_access_set, model_training_claim
from tests.conftest import token_client
from tests.factories import RegisteredModelFactory, UserFactory, weather_csv
from training.models import Dataset, TrainingJob
from training.services import training_job_execute

pytestmark = pytest.mark.django_db


def trainer_in(group_name: str):
    user = UserFactory(role="trainer")
    user.groups.add(Group.objects.get_or_create(name=group_name)[0])
    return user


def test_the_first_training_of_a_new_name_makes_the_trainer_its_owner(train, user, model_name):
    # when
    job = train()

    # then: the sync that followed the training kept the owner
    model = RegisteredModel.objects.get(name=model_name)
    assert job["status"] == "success"
    assert model.owner == user and model.mlflow_created_at is not None and not model.deleted


def test_another_trainer_cannot_train_a_model_and_nothing_is_stored(train, role_client, csv_upload, model_name):
    # given: the model of the fixture's trainer
    train()
    stored = (Dataset.objects.count(), TrainingJob.objects.count())

    # when
    response = role_client("trainer").post(f"/train?model_name={model_name}", {"file": csv_upload()})

    # then: the body names the model, not who holds it
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "not_model_owner" and body["extra"] == {"model_name": model_name}
    assert RegisteredModel.objects.get(name=model_name).owner.username not in str(body)
    assert (Dataset.objects.count(), TrainingJob.objects.count()) == stored


def test_the_owner_a_member_of_a_shared_group_and_a_maintainer_may_train_it(train, user, role_client, model_name):
    # given: the trainer's model, shared with team-a
    train()
    member = trainer_in("team-a")
    model_access_set(name=model_name, owner=user.username, shared_with=["team-a"])

    # when
    versions = [
        train(client=token_client(member))["registered_version"],
        train(client=role_client("maintainer"))["registered_version"],
        train()["registered_version"],
    ]

    # then: every one added a version, and the model is still the trainer's
    assert versions == [2, 3, 4]
    assert RegisteredModel.objects.get(name=model_name).owner == user


def test_a_member_of_another_group_cannot_train_a_shared_model(train, user, csv_upload, model_name):
    # given
    train()
    Group.objects.create(name="team-a")
    model_access_set(name=model_name, owner=user.username, shared_with=["team-a"])
    outsider = token_client(trainer_in("team-b"))

    # when
    response = outsider.post(f"/train?model_name={model_name}", {"file": csv_upload()})

    # then
    assert response.status_code == 403 and response.json()["code"] == "not_model_owner"


def test_a_model_without_an_owner_is_trained_by_maintainers_only(
    train, api_client, role_client, csv_upload, model_name
):
    # given: a model trained before models had owners
    RegisteredModelFactory(name=model_name)

    # when
    refused = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload()})
    job = train(client=role_client("maintainer"))

    # then: the maintainer's training does not make the model theirs
    assert refused.status_code == 403 and refused.json()["code"] == "not_model_owner"
    assert job["status"] == "success"
    assert RegisteredModel.objects.get(name=model_name).owner is None


def test_a_name_claimed_while_the_file_was_stored_is_refused_and_the_file_removed(
    api_client, role_client, csv_upload, model_name, monkeypatch
):
    # given: another trainer's first training of the same new name claims it between this request's check and
    # its claim (the race, made to happen here)
    from training.services import datasets

    rival = UserFactory(role="trainer")
    store = datasets.dataset_create

    def store_then_lose_the_race(**kwargs):
        dataset = store(**kwargs)
        RegisteredModel.objects.create(name=model_name, owner=rival)
        stored.append(dataset.file.name)
        return dataset

    stored: list[str] = []
    monkeypatch.setattr(datasets, "dataset_create", store_then_lose_the_race)

    # when
    response = api_client.post(f"/train?model_name={model_name}", {"file": csv_upload()})

    # then: refused, no row kept, and the stored file deleted again
    assert response.status_code == 403 and response.json()["code"] == "not_model_owner"
    assert not Dataset.objects.exists() and not TrainingJob.objects.exists()
    assert stored and not Dataset.file.field.storage.exists(stored[0])


def test_a_job_queued_before_its_model_was_shared_away_fails_and_registers_nothing(
    train, user, csv_upload, model_name
):
    # given: a member of team-a's job, stored (not run) while the model was shared with team-a, then unshared
    train()
    member = token_client(trainer_in("team-a"))
    model_access_set(name=model_name, owner=user.username, shared_with=["team-a"])
    queued = member.post(f"/train?model_name={model_name}", {"file": csv_upload()}).json()
    model_access_set(name=model_name, owner=user.username, shared_with=[])

    # when
    job = training_job_execute(job_id=queued["id"])

    # then
    assert job.status == TrainingJob.Status.FAILED and job.error_code == "not_model_owner"
    assert job.registered_version is None
    assert not TrainedVersion.objects.filter(job_key=job.key).exists()


def test_the_admin_upload_refuses_another_trainers_model(train, client, model_name):
    # given: the model of the fixture's trainer, and a staff trainer in the admin
    train()
    stored = Dataset.objects.count()
    client.force_login(UserFactory(role="trainer", is_staff=True))

    # when
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        "/admin/training/dataset/add/",
        {
            "file": SimpleUploadedFile("w.csv", weather_csv(), content_type="text/csv"),
            "model_name": model_name,
            "target": "target",
            "timestamp": "timestamp",
        },
    )

    # then: the form says why, nothing is stored
    assert response.status_code == 200
    assert "is not yours to train" in response.content.decode()
    assert Dataset.objects.count() == stored


def test_a_claim_without_a_user_takes_nothing(model_name):
    # when / then
    from core.errors import Forbidden

    with pytest.raises(Forbidden):
        model_training_claim(name=model_name, user=None)
    assert not RegisteredModel.objects.filter(name=model_name).exists()


def test_models_trained_before_owners_get_the_user_of_their_earliest_registering_job():
    # given: an ownerless model whose earliest job failed (carol), then alice's and bob's registered versions;
    # a name trained but not mirrored yet; a model no job trained; a model already owned
    alice, bob, carol, dora = (UserFactory(username=name) for name in ("alice", "bob", "carol", "dora"))
    RegisteredModelFactory(name="legacy")
    RegisteredModelFactory(name="outside")
    RegisteredModelFactory(name="owned", owner=dora)
    _job("legacy", carol, status=TrainingJob.Status.FAILED, minute=1)
    _job("legacy", alice, version=1, minute=2)
    _job("legacy", bob, version=2, minute=3)
    _job("unsynced", bob, version=1, minute=4)
    _job("owned", alice, version=1, minute=5)

    # when
    importlib.import_module("training.migrations.0007_model_owners").model_owners_from_jobs(apps, None)

    # then
    owners = dict(RegisteredModel.objects.values_list("name", "owner__username"))
    assert owners == {"legacy": "alice", "unsynced": "bob", "outside": None, "owned": "dora"}


def test_maintainers_are_given_the_rights_to_train_and_share_every_model():
    # when
    maintainer, trainer = UserFactory(role="maintainer"), UserFactory(role="trainer")

    # then
    rights = ("registry_mirror.train_any_model", "registry_mirror.share_model")
    assert maintainer.has_perms(rights) and not any(trainer.has_perm(right) for right in rights)


def _job(name: str, user, *, minute: int, version: int | None = None, status: str = TrainingJob.Status.SUCCEEDED):
    from datetime import UTC, datetime

    dataset = Dataset.objects.create(
        file="datasets/x.csv", original_name="x.csv", sha256="0" * 64, size_bytes=1, n_rows=1, n_columns=1
    )
    job = TrainingJob.objects.create(
        dataset=dataset,
        model_name=name,
        target_column="target",
        timestamp_column="timestamp",
        created_by=user,
        status=status,
        error_code="bad" if status == TrainingJob.Status.FAILED else "",
        registered_version=version,
    )
    TrainingJob.objects.filter(pk=job.pk).update(created_at=datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
