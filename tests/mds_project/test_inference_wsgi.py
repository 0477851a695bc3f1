"""The inference server's WSGI entry point: /predict through the short middleware chain, the rest through all."""

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from mds_project import inference_wsgi
from tests.factories import csv_bytes, weather_frame
from tests.inference.test_multipart import CONTENT_TYPES, field, file_part, form


def call(path: str, *, body: bytes = b"", headers: dict | None = None, query: str = "") -> tuple[str, dict, bytes]:
    environ = {
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_METHOD": "POST" if body else "GET",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **(headers or {}),
    }
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(response_headers)

    # A server closes the database connection around each request; inside a test transaction that would close
    # the test's own connection, so switch it off as Django's test client does.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        content = b"".join(inference_wsgi.application(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], content


def test_predict_goes_through_the_short_chain_and_answers(train, api_client, model_name):
    # given
    version = train()["registered_version"]
    token = api_client._credentials["HTTP_AUTHORIZATION"]

    # when
    status, headers, content = call(
        "/predict",
        body=csv_bytes(weather_frame(3)),
        headers={"CONTENT_TYPE": "text/csv", "HTTP_AUTHORIZATION": token},
        query=f"model_name={model_name}&version={version}",
    )

    # then
    assert status.startswith("200"), content
    assert headers["X-Model-Version"] == str(version)
    assert len(json.loads(content)["predictions"]) == 3
    assert "Set-Cookie" not in headers


def test_a_curl_upload_and_its_form_fields_are_answered_as_the_same_rows_as_text_csv(train, api_client, model_name):
    # given: the rows as curl -F sends them, and the options in the form
    version = train()["registered_version"]
    token = api_client._credentials["HTTP_AUTHORIZATION"]
    rows = csv_bytes(weather_frame(3))
    boundary = "------------------------d74496d66958873e"
    body = form(boundary, [field("version", str(version)), field("format", "onnx"), file_part(rows)])

    # when
    _, _, uploaded = call(
        "/predict",
        body=body,
        headers={"CONTENT_TYPE": f"multipart/form-data; boundary={boundary}", "HTTP_AUTHORIZATION": token},
        query=f"model_name={model_name}&version=0",
    )
    _, _, sent = call(
        "/predict",
        body=rows,
        headers={"CONTENT_TYPE": "text/csv", "HTTP_AUTHORIZATION": token},
        query=f"model_name={model_name}&version={version}&format=onnx",
    )

    # then
    assert json.loads(uploaded)["model"] == {"name": model_name, "version": version, "format": "onnx"}
    assert json.loads(uploaded)["predictions"] == json.loads(sent)["predictions"]


@pytest.mark.parametrize("content_type", [*CONTENT_TYPES, "text/csv; charset=latin-1", "", "TEXT/CSV"])
def test_the_short_chains_request_reads_the_content_type_as_djangos(content_type):
    # given
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type}
    setup_testing_defaults(environ)

    # when
    ours, djangos = inference_wsgi.LeanRequest(environ), WSGIRequest(environ)

    # then
    assert (ours.content_type, ours.content_params, ours.encoding) == (
        djangos.content_type,
        djangos.content_params,
        djangos.encoding,
    )


def test_only_security_and_common_middleware_serve_predict():
    # given
    lean = [type(m).__name__ for m in _chain(inference_wsgi.lean_application)]
    full = [type(m).__name__ for m in _chain(inference_wsgi.full_application)]

    # then
    assert lean == ["SecurityMiddleware", "CommonMiddleware"]
    assert "SessionMiddleware" in full and "CsrfViewMiddleware" in full
    assert len(settings.MIDDLEWARE) == len(full)


def test_other_paths_keep_the_full_chain(db):
    # when
    status, headers, _ = call("/admin/login/")

    # then: the admin works, with its CSRF cookie
    assert status.startswith("200")
    assert "csrftoken" in headers.get("Set-Cookie", "")


def _chain(handler) -> list:
    """The middleware instances of a Django handler, outermost first."""
    chain, current = [], handler._middleware_chain
    while current is not None:
        middleware = getattr(current, "__wrapped__", current)
        if not hasattr(middleware, "get_response"):
            break
        chain.append(middleware)
        current = middleware.get_response
    return chain
