"""No malformed request is a 500: NUL and lone surrogates in any parameter, and bodies of the wrong shape, are
400s on PostgreSQL (which refuses NUL in text) as on SQLite."""

import pytest

from tests.factories import weather_csv

NUL_URLS = [
    "/models/a%00b",
    "/models/a%00b/versions",
    "/models/a%00b/versions/1",
    "/models/a%00b/versions/1/drift",
    "/models/a%00b/versions/1/performance",
    "/models/rf_regressor/aliases/champ%00ion",
    "/train?model_name=a%00b",
    "/models?search=a%00b",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_in_the_path_or_query_is_a_400_naming_the_parameter(role_client, url):
    # given
    client = role_client("maintainer")

    # when
    response = client.get(url)

    # then
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["extra"]["parameter"] in ("path", "model_name", "search")


@pytest.mark.parametrize("url", ["/models/a%ED%A0%80b", "/models?search=a%ED%A0%80b", "/models/a%ED%A0%80b/versions"])
def test_a_surrogate_encoded_in_the_url_is_no_500(role_client, url):
    # given: a surrogate's UTF-8-style bytes, which are not UTF-8 (Django keeps them percent-encoded or replaced)
    client = role_client("maintainer")

    # when
    response = client.get(url)

    # then
    assert response.status_code in (200, 404), response.content[:300]


def test_a_nul_in_a_multipart_training_field_is_a_400(api_client, csv_upload, model_name):
    # when: (Django decodes a multipart field's bad UTF-8 as U+FFFD, so a surrogate cannot arrive this way)
    response = api_client.post(
        f"/train?model_name={model_name}", {"file": csv_upload(), "target": "a\x00b", "timestamp": "timestamp"}
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "message": "The parameter 'target' holds a NUL character or a lone surrogate, which no text can hold.",
        "code": "invalid_input",
        "extra": {"parameter": "target"},
    }


@pytest.mark.parametrize("value", ["a\\u0000b", "a\\ud800b"])
def test_nul_or_a_surrogate_in_a_json_body_is_a_400_naming_the_field(role_client, value):
    # given: an API taking JSON (an alias move); the string escapes are JSON's, so the body itself is valid UTF-8
    client = role_client("maintainer")
    body = '{"version": 1, "note": "' + value + '"}'

    # when
    response = client.post("/models/rf_regressor/aliases/champion", body, content_type="application/json")

    # then
    assert response.status_code == 400
    assert response.json()["extra"] == {"parameter": "body.note"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data": "", "content_type": "text/plain"},
        {"data": "{}", "content_type": "application/json"},
        {"data": "[]", "content_type": "application/json"},
        {"data": '"x"', "content_type": "application/json"},
        {"data": "", "content_type": "application/x-www-form-urlencoded"},
    ],
)
def test_a_training_request_without_a_form_body_is_a_4xx(api_client, body):
    # when
    response = api_client.post("/train", **body)

    # then: JSON is not a type /train takes (415); no body at all names the missing file
    assert response.status_code in (400, 415), response.content[:300]
    assert response.json()["code"] in ("invalid_input", "unsupported_media_type")


def test_a_urlencoded_form_with_a_nul_is_a_400(api_client):
    # when
    response = api_client.post("/train", "target=a%00b", content_type="application/x-www-form-urlencoded")

    # then
    assert response.status_code == 400
    assert response.json()["extra"] == {"parameter": "target"}


def test_a_nul_in_an_uploaded_file_name_is_no_500(api_client, model_name):
    # given
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("we\x00ather.csv", weather_csv(), content_type="text/csv")

    # when
    response = api_client.post(f"/train?model_name={model_name}&n_estimators=2", {"file": upload})

    # then
    assert response.status_code < 500, response.content[:300]
