import re

import pytest


def test_the_openapi_schema_documents_train_and_predict(api_client):
    # when
    response = api_client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    # then
    assert response.status_code == 200
    paths = response.json()["paths"]
    train_body = paths["/train"]["post"]["requestBody"]["content"]
    predict = paths["/predict"]["post"]
    assert "multipart/form-data" in train_body
    assert {"multipart/form-data", "text/csv", "application/json"} <= predict["requestBody"]["content"].keys()
    assert {"model_name", "version", "alias", "format"} <= {p["name"] for p in predict["parameters"]}
    assert {"post", "delete"} <= paths["/models/{name}/aliases/{alias}/"].keys()


def test_the_schema_needs_a_signed_in_user(client, db):
    # when
    response = client.get("/api/schema")

    # then
    assert response.status_code in (401, 403)


@pytest.mark.parametrize("path", ["/api/docs", "/api/redoc"])
def test_the_docs_send_a_visitor_to_log_in_and_back(client, db, path):
    # given
    from tests.factories import StaffUserFactory

    reader = StaffUserFactory(username="reader")
    reader.set_password("s3cret-pass")
    reader.save()

    # when
    refused = client.get(path)
    logged_in = client.post(refused["Location"], {"username": "reader", "password": "s3cret-pass"})

    # then: the login page, then the docs themselves
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")
    assert logged_in.status_code == 302 and logged_in["Location"] == path
    assert client.get(path).status_code == 200


def test_a_token_that_is_not_valid_still_gets_a_401_from_the_docs(client, db):
    response = client.get("/api/docs", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/api/docs", "/api/redoc"])
def test_the_docs_load_their_scripts_from_this_server_only(client, db, path):
    # given: an admin session
    from tests.factories import StaffUserFactory

    client.force_login(StaffUserFactory())

    # when
    page = client.get(path).content.decode()

    # then: every script and stylesheet is a path on this server, none on a CDN
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(source.endswith(".js") for source in sources)
    assert all(source.startswith("/") for source in sources), sources
    assert "cdn" not in page.lower()
