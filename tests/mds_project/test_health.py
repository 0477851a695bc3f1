"""Liveness and readiness: /health touches nothing, /health/ready reports each dependency."""


def test_health_answers_without_auth_or_database(db, client, django_assert_num_queries):
    # given / when
    with django_assert_num_queries(0):
        response = client.get("/health")

    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_every_dependency(db, client):
    # when
    response = client.get("/health/ready")

    # then: embedded settings use neither a broker nor S3
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["dependencies"]) == {"database", "broker", "s3", "mlflow"}
    assert all(state["ok"] for state in body["dependencies"].values()), body
    assert body["dependencies"]["broker"]["detail"].startswith("not used")


def test_ready_names_a_dependency_that_is_down_and_answers_503_only_when_asked_to(db, client, s3_down, settings):
    # given: S3 and MLflow are down
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"

    # when
    serving = client.get("/health/ready")
    strict = client.get("/health/ready?require=database,s3")

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
