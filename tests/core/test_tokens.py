"""API tokens: stored hashed, expiring, revoked within the cache's TTL, listed and revoked by owner or maintainer."""

import importlib
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AuthToken

from core.auth import token_cache, token_cache_clear
from tests.conftest import token_client
from tests.factories import StaffUserFactory, UserFactory, api_token
from tests.mds_project.test_inference_wsgi import call


@pytest.fixture(autouse=True)
def _empty_token_cache():
    token_cache_clear()
    yield
    token_cache_clear()


def authorization(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def test_a_token_is_stored_as_its_digest_only(client, db):
    # given
    user = UserFactory(role="trainer")

    # when
    token = api_token(user)

    # then: nothing stored is the token, and the token works
    stored = AuthToken.objects.get(user=user)
    assert stored.digest == hash_token(token)
    assert token not in (stored.digest, stored.token_key) and len(token) == 64
    assert stored.expiry is not None and stored.expiry > timezone.now() + timedelta(days=29)
    assert client.get("/train", **authorization(token)).status_code == 200


def test_an_expired_token_is_refused_even_while_cached(client, db, monkeypatch, settings):
    # given: a token of one day, checked once (so cached, for longer than the test can take)
    settings.MDS_TOKEN_CACHE_TTL = 3600
    token = api_token(UserFactory(role="trainer"), days=1)
    assert client.get("/train", **authorization(token)).status_code == 200

    # when: two days later, still inside the cache's TTL
    later = timezone.now() + timedelta(days=2)
    monkeypatch.setattr("core.auth.timezone.now", lambda: later)
    answer = client.get("/train", **authorization(token))

    # then
    assert answer.status_code == 401 and "expired" in answer.json()["message"]


def test_a_token_already_expired_is_refused(client, db):
    # given
    token = api_token(UserFactory(role="trainer"), days=1)
    AuthToken.objects.filter(digest=hash_token(token)).update(expiry=timezone.now() - timedelta(seconds=1))

    # when
    answer = client.get("/train", **authorization(token))

    # then
    assert answer.status_code == 401


def test_issue_token_days_zero_never_expires_and_the_setting_sets_the_default(db, settings):
    # given
    settings.MDS_TOKEN_TTL_DAYS = 0
    user = UserFactory(role="trainer")

    # when
    default = api_token(user)
    chosen = api_token(user, days=2)

    # then
    assert AuthToken.objects.get(digest=hash_token(default)).expiry is None
    expiry = AuthToken.objects.get(digest=hash_token(chosen)).expiry
    assert timedelta(days=1.9) < expiry - timezone.now() <= timedelta(days=2)


def test_the_inference_server_refuses_a_revoked_token_once_the_cache_ttl_passed(db, settings):
    # given: a token the inference server checked (and cached); a TTL of an hour, so that the test's own speed
    # never decides whether the second request is still inside it
    settings.MDS_TOKEN_CACHE_TTL = 3600
    token = api_token(UserFactory(role="predictor"))
    headers = {"CONTENT_TYPE": "text/csv", **authorization(token)}

    def predict() -> str:
        # An engine that does not exist: 400 once authenticated, before any model is looked up.
        return call("/predict", body=b"a\n1\n", headers=headers, query="format=no_such_engine")[0]

    known = predict()

    # when: the token is deleted by another process (this one's cache is not told)
    AuthToken.objects.filter(digest=hash_token(token)).delete()
    within_ttl = predict()
    token_cache().expire(time.monotonic() + 3600.01)
    after_ttl = predict()

    # then: authenticated (the request's own error) until the TTL has passed, then refused
    assert (known[:3], within_ttl[:3], after_ttl[:3]) == ("400", "400", "401")


def test_with_a_cache_ttl_of_zero_a_revoked_token_is_refused_at_once(client, db, settings):
    # given
    settings.MDS_TOKEN_CACHE_TTL = 0
    token = api_token(UserFactory(role="trainer"))
    assert client.get("/train", **authorization(token)).status_code == 200

    # when
    AuthToken.objects.filter(digest=hash_token(token)).delete()

    # then
    assert client.get("/train", **authorization(token)).status_code == 401


def test_an_owner_lists_creates_and_revokes_their_tokens_and_never_sees_a_secret(db, client):
    # given
    owner = UserFactory(role="predictor")
    first = api_token(owner)
    api_token(UserFactory(role="predictor"))

    # when
    created = client.post("/tokens", **authorization(first))
    listed = client.get("/tokens", **authorization(first)).json()["results"]
    revoked = client.delete(f"/tokens/{hash_token(first)}", **authorization(created.json()["token"]))

    # then: two tokens of their own, prefix and dates but no secret; the revoked one refused at once here
    assert created.status_code == 201
    new = created.json()["token"]
    assert client.get("/models/", **authorization(new)).status_code == 200
    assert [row["user"] for row in listed] == [owner.username] * 2
    assert {row["prefix"] for row in listed} == {first[:8], new[:8]}
    assert set(listed[0]) == {"id", "prefix", "user", "created", "expiry", "expired"}
    assert not any(secret in str(listed) for secret in (first, new, first[:15], new[:15]))
    assert revoked.status_code == 204
    assert client.get("/models/", **authorization(first)).status_code == 401


def test_another_users_token_is_a_404_to_a_non_maintainer(db):
    # given
    alice, bob = UserFactory(role="trainer"), UserFactory(role="trainer")
    bobs = api_token(bob)
    alice_client = token_client(alice)

    # when
    revoke = alice_client.delete(f"/tokens/{hash_token(bobs)}")
    unknown = alice_client.delete(f"/tokens/{'0' * 128}")
    listed = alice_client.get("/tokens?user=" + bob.username).json()["results"]

    # then: the same answer as for no token at all, and bob's token still works
    assert (revoke.status_code, revoke.json()["code"]) == (404, "unknown_token")
    assert revoke.json()["message"] == unknown.json()["message"]
    assert {row["user"] for row in listed} == {alice.username}
    assert token_client(bob).get("/train").status_code == 200
    assert AuthToken.objects.filter(digest=hash_token(bobs)).exists()


def test_a_maintainer_lists_everyones_tokens_and_revokes_anyones(db, client):
    # given
    maintainer = UserFactory(role="maintainer")
    carol = UserFactory(role="predictor")
    carols = api_token(carol)
    maintainer_client = token_client(maintainer)

    # when
    everyone = maintainer_client.get("/tokens").json()["results"]
    carols_only = maintainer_client.get(f"/tokens?user={carol.username}").json()["results"]
    revoked = maintainer_client.delete(f"/tokens/{hash_token(carols)}")

    # then
    assert {row["user"] for row in everyone} == {maintainer.username, carol.username}
    assert [row["id"] for row in carols_only] == [hash_token(carols)]
    assert revoked.status_code == 204
    assert client.get("/models/", **authorization(carols)).status_code == 401


def test_the_admin_shows_tokens_without_any_secret_and_read_only(client, db):
    # given
    token = api_token(UserFactory(username="erin", role="trainer"))
    client.force_login(StaffUserFactory(is_superuser=True))

    # when
    page = client.get("/admin/knox/authtoken/")
    detail = client.get(f"/admin/knox/authtoken/{hash_token(token)}/change/")
    add = client.get("/admin/knox/authtoken/add/")

    # then
    assert page.status_code == 200 and "erin" in page.content.decode() and token[:8] in page.content.decode()
    for answer in (page, detail):
        assert token[:15] not in answer.content.decode()
    assert detail.status_code == 200 and 'name="expiry"' not in detail.content.decode()
    assert add.status_code == 403


def test_plain_tokens_of_before_are_carried_over_hashed_and_their_table_dropped(db, client):
    # given: rest_framework.authtoken's table with a user's plain key, as a deployed database has it
    user = UserFactory(role="trainer")
    key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, user_id integer, created timestamp)'
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [key, user.pk, "2026-01-02 03:04:05"])
    migration = importlib.import_module("core.migrations.0001_hashed_tokens")

    # when
    with connection.cursor() as cursor:
        editor = SimpleNamespace(connection=connection, execute=lambda sql, params=(): cursor.execute(sql, params))
        migration.tokens_carry_over(apps, editor)

    # then: the old key works as it was, stored as its digest only, and the plain table is gone
    assert client.get("/train", **authorization(key)).status_code == 200
    stored = AuthToken.objects.get(user=user)
    assert stored.digest == hash_token(key) and stored.created.year == 2026 and stored.expiry is not None
    assert "authtoken_token" not in connection.introspection.table_names()


def database_down(monkeypatch) -> list:
    """Every token lookup fails as a lookup does when PostgreSQL is gone (both the first try and the retry); the
    list the tries are counted in."""
    from django.db import OperationalError

    tries = []

    def refused(*args, **kwargs):
        tries.append(args)
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    monkeypatch.setattr("knox.models.AuthToken.objects.select_related", refused)
    return tries


@pytest.mark.parametrize("grace", [300, 0])
def test_a_token_checked_lately_is_still_trusted_while_the_database_is_down(client, db, monkeypatch, settings, grace):
    # given: one token checked (its cache TTL then passed), another never checked
    settings.MDS_TOKEN_CACHE_TTL, settings.MDS_TOKEN_OUTAGE_GRACE = 3600, grace
    user = UserFactory(role="trainer")
    checked, unchecked = api_token(user), api_token(user)
    assert client.get("/train", **authorization(checked)).status_code == 200
    token_cache().expire(time.monotonic() + 3600.01)

    # when
    tries = database_down(monkeypatch)
    answers = [client.get("/train", **authorization(token)) for token in (checked, unchecked, checked)]

    # then: inside the grace the checked one is trusted, the other is the database's 503; without it, both 503.
    # A token trusted so is asked for again after the cache's TTL, not on its next request.
    statuses = [answer.status_code for answer in answers]
    assert statuses == ([200, 503, 200] if grace else [503, 503, 503])
    assert answers[1].json()["code"] == "database_unavailable"
    assert len(tries) == (2 if grace else 3)


def test_a_token_deleted_is_forgotten_for_outages_too(client, db, monkeypatch, settings):
    # given: a checked token, deleted by another process, seen as refused once its cache TTL passed
    settings.MDS_TOKEN_CACHE_TTL, settings.MDS_TOKEN_OUTAGE_GRACE = 3600, 300
    token = api_token(UserFactory(role="trainer"))
    assert client.get("/train", **authorization(token)).status_code == 200
    AuthToken.objects.filter(digest=hash_token(token)).delete()
    token_cache().expire(time.monotonic() + 3600.01)
    assert client.get("/train", **authorization(token)).status_code == 401

    # when: the database goes down
    database_down(monkeypatch)
    answer = client.get("/train", **authorization(token))

    # then
    assert answer.status_code == 503


class ConnectionLostOnce:
    """An execute wrapper: the first query on a table named ``table`` fails as one does on a connection the
    database (or a proxy) closed."""

    def __init__(self, table: str):
        self.table, self.failed = table, 0

    def __call__(self, execute, sql, params, many, context):
        from django.db import OperationalError

        if self.table in sql and not self.failed:
            self.failed += 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


def request_with_the_permissions_query_lost_once(client, settings, grace: float):
    """A request whose token was checked once and whose cache TTL then passed, so that it reads the token and its
    user's permissions again, the connection lost on the permissions' query; its answer."""
    settings.MDS_TOKEN_CACHE_TTL, settings.MDS_TOKEN_OUTAGE_GRACE = 3600, grace
    token = api_token(UserFactory(role="trainer"))
    assert client.get("/train", **authorization(token)).status_code == 200
    token_cache().expire(time.monotonic() + 3600.01)
    lost = ConnectionLostOnce("auth_permission")
    with connection.execute_wrapper(lost):
        answer = client.get("/train", **authorization(token))
    assert lost.failed == 1
    return answer


@pytest.mark.parametrize("grace", [300, 0])
@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_between_the_token_and_its_permissions_is_retried(client, settings, grace):
    # when
    answer = request_with_the_permissions_query_lost_once(client, settings, grace)

    # then: read again on a fresh connection, not the database's 503
    assert answer.status_code == 200, answer.content


def test_a_connection_lost_on_the_permissions_inside_a_transaction_falls_back_on_the_check_before(
    client, db, settings
):
    # when: as above, but inside a transaction, where a fresh connection cannot be taken
    answer = request_with_the_permissions_query_lost_once(client, settings, grace=300)

    # then: the outage grace covers the permissions as it covers the token
    assert answer.status_code == 200, answer.content
