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


@pytest.mark.parametrize("path", ["/api/schema", "/api/docs", "/api/redoc"])
def test_the_schema_and_its_docs_need_a_signed_in_user(client, db, path):
    # when
    response = client.get(path)

    # then
    assert response.status_code in (401, 403)


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
