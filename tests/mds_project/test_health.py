"""Liveness and readiness: /health touches nothing, /health/ready reports each dependency."""

import json

import pytest

from tests.factories import UserFactory, api_token
from tests.mds_project.test_inference_wsgi import call


def test_health_answers_without_auth_or_database(db, client, django_assert_num_queries):
    # given / when
    with django_assert_num_queries(0):
        response = client.get("/health")

    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_every_dependency(api_client):
    # when: a token holder asks
    response = api_client.get("/health/ready")

    # then: embedded settings use neither a broker nor S3
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["dependencies"]) == {"database", "broker", "s3", "mlflow"}
    assert all(state["ok"] for state in body["dependencies"].values()), body
    assert body["dependencies"]["broker"]["detail"].startswith("not used")


def test_ready_names_a_dependency_that_is_down_and_answers_503_only_when_asked_to(api_client, s3_down, settings):
    # given: S3 and MLflow are down
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"

    # when
    serving = api_client.get("/health/ready")
    strict = api_client.get("/health/ready?require=database,s3")

    # then: still serving (loaded versions, the database), but degraded, and each fault named
    assert serving.status_code == 200
    body = serving.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["database"]["ok"] is True
    assert body["dependencies"]["s3"]["ok"] is False and "Could not connect" in body["dependencies"]["s3"]["error"]
    assert body["dependencies"]["mlflow"]["ok"] is False
    assert strict.status_code == 503 and int(strict["Retry-After"]) > 0


def test_ready_refuses_an_unknown_dependency(db, client):
    # when
    response = client.get("/health/ready?require=database,rabbit")

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_ready_shows_an_anonymous_caller_each_state_but_no_details(db, client, s3_down):
    # when: a load balancer asks, without credentials, while S3 is down
    serving = client.get("/health/ready")
    strict = client.get("/health/ready?require=s3")

    # then: the state of each dependency, not its host, error text or the loaded versions
    assert serving.status_code == 200
    assert serving.json() == {
        "status": "degraded",
        "dependencies": {
            "database": {"ok": True},
            "broker": {"ok": True},
            "s3": {"ok": False},
            "mlflow": {"ok": True},
        },
    }
    assert strict.status_code == 503 and strict.json()["dependencies"]["s3"] == {"ok": False}


def test_ready_hides_details_from_a_wrong_token_and_a_non_staff_session(db, client, s3_down):
    # given
    client.force_login(UserFactory(username="plain", role="trainer"))

    # when
    wrong_token = client.get("/health/ready", headers={"Authorization": "Token not-a-token"})
    session = client.get("/health/ready")

    # then: both are answered as an anonymous caller would be, never 401/500
    for response in (wrong_token, session):
        assert response.status_code == 200
        assert response.json()["dependencies"]["s3"] == {"ok": False}


def test_ready_shows_a_staff_session_the_details(db, client, s3_down):
    # given
    client.force_login(UserFactory(username="operator", role="maintainer", is_staff=True))

    # when
    body = client.get("/health/ready").json()

    # then
    assert "Could not connect" in body["dependencies"]["s3"]["error"]
    assert "loaded" in body and "aliases" in body


@pytest.mark.parametrize("with_token", [False, True])
def test_ready_on_the_inference_server_shows_details_to_token_holders_only(user, s3_down, with_token):
    # given: the inference server's lean chain (no sessions)
    headers = {"HTTP_AUTHORIZATION": f"Token {api_token(user)}"} if with_token else {}

    # when
    status, _, content = call("/health/ready", headers=headers)

    # then
    assert status.startswith("200")
    s3 = json.loads(content)["dependencies"]["s3"]
    assert s3["ok"] is False
    assert ("error" in s3) is with_token
