"""Who may do what: roles as groups, private jobs, `issue_token --role`, and the admin's view of them."""

import io

import pytest
from django.core.management import call_command
from knox.crypto import hash_token
from knox.models import AuthToken

from tests.factories import UserFactory, csv_bytes, weather_frame
from training.models import TrainingJob


def test_a_predictor_predicts_but_cannot_train_or_promote(train, role_client, model_name, csv_upload):
    # given: a version trained by a trainer
    version = train()["registered_version"]
    predictor = role_client("predictor")

    # when
    predicted = predictor.post(
        f"/predict?model_name={model_name}", csv_bytes(weather_frame(2)), content_type="text/csv"
    )
    trained = predictor.post(f"/train?model_name={model_name}", {"file": csv_upload()})
    listed = predictor.get("/train")
    promoted = predictor.post(f"/models/{model_name}/aliases/staging", {"version": version}, format="json")
    models = predictor.get("/models/")

    # then
    assert predicted.status_code == 200
    assert (trained.status_code, listed.status_code, promoted.status_code) == (403, 403, 403)
    assert trained.json()["code"] == "permission_denied"
    assert models.status_code == 200
    assert TrainingJob.objects.count() == 1


def test_a_trainer_cannot_promote(train, api_client, model_name):
    # given
    version = train()["registered_version"]

    # when
    response = api_client.post(f"/models/{model_name}/aliases/staging", {"version": version}, format="json")
    removed = api_client.delete(f"/models/{model_name}/aliases/champion")

    # then
    assert response.status_code == removed.status_code == 403


def test_a_trainer_sees_only_their_own_jobs_and_a_maintainer_sees_all(train, api_client, role_client, model_name):
    # given: one job of the trainer, one of another trainer (on a model of their own)
    mine = train()
    other_client = role_client("trainer")
    theirs = train(client=other_client, model_name=f"{model_name}_theirs")
    maintainer = role_client("maintainer")

    # when
    my_list = api_client.get("/train").json()["results"]
    their_job = api_client.get(f"/train/{theirs['id']}")
    missing_job = api_client.get(f"/train/{theirs['id'] + 100}")
    all_jobs = maintainer.get("/train").json()["results"]

    # then: another's job is as absent as a job that does not exist
    assert [job["id"] for job in my_list] == [mine["id"]]
    assert their_job.status_code == missing_job.status_code == 404
    assert their_job.json() == missing_job.json()
    assert {job["id"] for job in all_jobs} == {mine["id"], theirs["id"]}
    assert maintainer.get(f"/train/{theirs['id']}").status_code == 200


def test_a_paginated_list_is_capped(train, role_client, settings):
    # given
    settings.MDS_PAGE_MAX_LIMIT = 1
    train(), train()

    # when
    page = role_client("maintainer").get("/train?limit=10000000").json()

    # then
    assert len(page["results"]) == 1 and page["count"] == 2 and page["next"]


def test_a_user_without_a_role_may_do_nothing(db):
    # given
    from tests.conftest import token_client

    nobody = token_client(UserFactory())

    # when
    answers = [
        nobody.get("/train"),
        nobody.get("/models/"),
        nobody.post("/predict", b"a\n1\n", content_type="text/csv"),
    ]

    # then
    assert [answer.status_code for answer in answers] == [403, 403, 403]


@pytest.mark.parametrize(("args", "groups"), [([], ["trainer"]), (["--role", "maintainer"], ["maintainer"])])
def test_issue_token_makes_a_user_in_a_role_and_prints_only_the_token(db, args, groups, client):
    # given
    out = io.StringIO()

    # when
    call_command("issue_token", "carol", *args, stdout=out)

    # then: the printed token works, and is stored only as its digest
    token = out.getvalue().strip()
    stored = AuthToken.objects.get(user__username="carol")
    assert stored.digest == hash_token(token) and token not in {stored.digest, stored.token_key}
    assert client.get("/train", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    assert list(stored.user.groups.values_list("name", flat=True)) == groups


def test_issue_token_with_a_role_replaces_the_role_and_keeps_the_older_token_working(db, client):
    # given
    first = io.StringIO()
    call_command("issue_token", "dave", stdout=first)

    # when
    call_command("issue_token", "dave", "--role", "predictor", stdout=io.StringIO())
    call_command("issue_token", "dave", stdout=io.StringIO())

    # then: no --role on an existing user leaves the role alone; every token issued works
    user = AuthToken.objects.filter(user__username="dave").first().user
    assert list(user.groups.values_list("name", flat=True)) == ["predictor"]
    assert AuthToken.objects.filter(user=user).count() == 3
    answer = client.get("/models/", HTTP_AUTHORIZATION=f"Token {first.getvalue().strip()}")
    assert answer.status_code == 200


def test_the_admin_shows_a_staff_trainer_only_their_own_jobs_and_datasets(train, role_client, client, model_name):
    # given: a staff trainer's job, and another trainer's
    staff_trainer = UserFactory(role="trainer", is_staff=True)
    from tests.conftest import token_client

    mine = train(client=token_client(staff_trainer))
    theirs = train(client=role_client("trainer"), model_name=f"{model_name}_theirs")
    client.force_login(staff_trainer)

    # when
    jobs = client.get("/admin/training/trainingjob/")
    datasets = client.get("/admin/training/dataset/")
    their_page = client.get(f"/admin/training/trainingjob/{theirs['id']}/change/", follow=True)

    # then
    assert [job.pk for job in jobs.context["cl"].result_list] == [mine["id"]]
    assert [dataset.pk for dataset in datasets.context["cl"].result_list] == [mine["dataset"]["id"]]
    assert "doesn’t exist" in their_page.content.decode()
