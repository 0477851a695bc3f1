"""Maintainers set a model's owner and the groups it is shared with (API and admin); the sync keeps them."""

import pytest
from django.contrib.auth.models import Group

from registry_mirror.models import RegisteredModel
from registry_mirror.services import model_training_claim, registry_mirror_sync
from tests.conftest import token_client
from tests.factories import RegisteredModelFactory, StaffUserFactory, UserFactory, mlflow_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def weather():
    Group.objects.create(name="team-a")
    return RegisteredModelFactory(name="weather", owner=UserFactory(username="alice", role="trainer"))


def test_a_maintainer_sets_the_owner_and_the_groups_of_a_model(role_client, weather):
    # given
    UserFactory(username="bob", role="trainer")
    maintainer = role_client("maintainer")

    # when
    put = maintainer.put("/models/weather/access", {"owner": "bob", "shared_with": ["team-a"]}, format="json")
    got = maintainer.get("/models/weather/access")
    unowned = maintainer.put("/models/weather/access", {"owner": None, "shared_with": []}, format="json")

    # then
    assert put.status_code == 200
    assert put.json() == got.json() == {"name": "weather", "owner": "bob", "shared_with": ["team-a"]}
    assert unowned.json() == {"name": "weather", "owner": None, "shared_with": []}
    weather.refresh_from_db()
    assert weather.owner is None and not weather.shared_with.exists()


@pytest.mark.parametrize("role", ["trainer", "predictor"])
def test_only_maintainers_see_or_change_who_owns_a_model(role_client, weather, role):
    # given: a trainer, even the owner, may not give the model away
    client = token_client(weather.owner) if role == "trainer" else role_client(role)

    # when
    got = client.get("/models/weather/access")
    put = client.put("/models/weather/access", {"owner": None, "shared_with": ["team-a"]}, format="json")

    # then
    assert got.status_code == put.status_code == 403
    weather.refresh_from_db()
    assert weather.owner.username == "alice" and not weather.shared_with.exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"owner": "nobody", "shared_with": []}, 400, "unknown_user"),
        ({"owner": "alice", "shared_with": ["team-a", "team-z"]}, 400, "unknown_group"),
        ({"shared_with": []}, 400, "invalid_input"),
    ],
)
def test_unknown_names_change_nothing(role_client, weather, body, status, code):
    # when
    response = role_client("maintainer").put("/models/weather/access", body, format="json")

    # then
    assert (response.status_code, response.json()["code"]) == (status, code)
    weather.refresh_from_db()
    assert weather.owner.username == "alice" and not weather.shared_with.exists()


def test_an_unknown_model_is_a_404(role_client, db):
    # when
    response = role_client("maintainer").put(
        "/models/nothing/access", {"owner": None, "shared_with": []}, format="json"
    )

    # then
    assert response.status_code == 404


def test_a_model_says_whether_the_caller_may_train_it(role_client, weather):
    # given
    member = UserFactory(role="trainer")
    member.groups.add(Group.objects.get(name="team-a"))
    weather.shared_with.add(Group.objects.get(name="team-a"))
    RegisteredModelFactory(name="nobodys")

    # when
    def may_train(client) -> dict[str, bool]:
        return {model["name"]: model["may_train"] for model in client.get("/models/").json()["results"]}

    # then
    assert may_train(token_client(weather.owner)) == {"nobodys": False, "weather": True}
    assert may_train(token_client(member)) == {"nobodys": False, "weather": True}
    assert may_train(role_client("trainer")) == {"nobodys": False, "weather": False}
    assert may_train(role_client("maintainer")) == {"nobodys": True, "weather": True}


def test_a_maintainer_sets_the_owner_and_groups_in_the_admin(client, weather):
    # given
    bob = UserFactory(username="bob", role="trainer")
    team = Group.objects.get(name="team-a")
    client.force_login(UserFactory(role="maintainer", is_staff=True))
    url = f"/admin/registry_mirror/registeredmodel/{weather.pk}/change/"

    # when
    page = client.get(url)
    saved = client.post(url, {"owner": bob.pk, "shared_with": [team.pk]})

    # then
    assert page.status_code == 200 and b'name="owner"' in page.content
    assert saved.status_code == 302
    weather.refresh_from_db()
    assert weather.owner == bob and list(weather.shared_with.all()) == [team]


def test_a_staff_trainer_reads_a_models_owner_in_the_admin_but_cannot_change_it(client, weather):
    # given
    client.force_login(UserFactory(role="trainer", is_staff=True))
    url = f"/admin/registry_mirror/registeredmodel/{weather.pk}/change/"

    # when
    page = client.get(url)
    saved = client.post(url, {"owner": "", "shared_with": []})

    # then
    assert page.status_code == 200 and b'name="owner"' not in page.content and b"alice" in page.content
    assert saved.status_code == 403
    weather.refresh_from_db()
    assert weather.owner.username == "alice"


def test_the_sync_keeps_a_claim_made_before_mlflow_knew_the_model_and_its_sharing(mlflow_store):
    # given: a name claimed by a training that has not registered yet, shared with a group
    alice = UserFactory(username="alice", role="trainer")
    model = model_training_claim(name="weather", user=alice)
    model.shared_with.add(Group.objects.create(name="team-a"))

    # when: a full sync before MLflow knows the model, and one after
    before = registry_mirror_sync()
    mlflow_version("weather")
    after = registry_mirror_sync()

    # then
    model = RegisteredModel.objects.get(name="weather")
    assert before.models_deleted == 1 and after.versions_created == 1
    assert not model.deleted and model.mlflow_created_at is not None
    assert model.owner == alice and [group.name for group in model.shared_with.all()] == ["team-a"]


def test_a_superuser_may_train_and_share_every_model(weather):
    # when / then
    from registry_mirror.selectors import model_training_allowed

    assert model_training_allowed(model=weather, user=StaffUserFactory())
