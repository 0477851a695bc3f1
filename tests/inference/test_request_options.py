"""/predict's options (query string and form fields): validated once per distinct set, or per query string, and
refused every time."""

import io

import pytest
from django.core.handlers.wsgi import WSGIRequest
from rest_framework.exceptions import ValidationError

from core.contract import VersionRef
from inference.serializers import _options_validated, _query_validated, prediction_options, query_options


@pytest.fixture(autouse=True)
def _forget():
    for cache in (_options_validated, _query_validated):
        cache.cache_clear()
    yield
    for cache in (_options_validated, _query_validated):
        cache.cache_clear()


def test_the_same_options_are_validated_once_and_answered_read_only():
    # when
    first = prediction_options({"version": "3", "model_name": "weather"})
    again = prediction_options({"model_name": "weather", "version": "3"})

    # then: one validation for both orders, and an answer nobody can change for the next request
    assert dict(first) == {"model_name": "weather", "version": VersionRef(number=3), "format": "auto"}
    assert again is first
    assert _options_validated.cache_info().hits == 1
    with pytest.raises(TypeError):
        first["format"] = "onnx"  # type: ignore[index]


def test_refused_options_are_refused_every_time():
    # when / then
    for _ in range(2):
        with pytest.raises(ValidationError) as refused:
            prediction_options({"version": "1", "alias": "champion"})
        assert "alias" in refused.value.detail
    assert _options_validated.cache_info().currsize == 0


def test_the_default_version_follows_the_serving_alias_setting(settings):
    # given
    before = prediction_options({})["version"]

    # when
    settings.MDS_SERVING_ALIAS = "@production"
    after = prediction_options({})["version"]

    # then
    assert (before, after) == (VersionRef(alias="champion"), VersionRef(alias="production"))


@pytest.mark.parametrize(
    "query_string",
    [
        "model_name=weather&version=3",
        "version=1&version=%40champion&format=onnx",  # the last value of a name, as request.GET.dict()
        "alias=%40staging&interval=0.9&explain=true",
        # Refused, the value quoted: a wrong decoding would quote another value.
        "format=m%C3%A9t%C3%A9o",  # percent-encoded UTF-8
        "format=m\xc3\xa9t\xc3\xa9o",  # raw UTF-8 bytes, as a WSGI server hands them: latin-1 characters
        "",
    ],
)
def test_a_query_string_gives_the_options_its_parse_gives(query_string):
    # given: what Django's request.GET holds for this QUERY_STRING
    parsed = WSGIRequest(
        {"REQUEST_METHOD": "GET", "QUERY_STRING": query_string, "wsgi.input": io.BytesIO()}
    ).GET.dict()

    # when / then: the same options, or the same refusal
    assert _outcome(query_options, query_string) == _outcome(prediction_options, parsed)


def test_the_same_query_string_is_parsed_and_validated_once():
    # when
    first = query_options("model_name=weather&version=3")
    again = query_options("model_name=weather&version=3")

    # then
    assert again is first
    assert _query_validated.cache_info().hits == 1
    with pytest.raises(TypeError):
        first["version"] = "4"  # type: ignore[index]


def test_a_refused_query_string_is_refused_every_time(settings):
    # when / then
    for _ in range(2):
        with pytest.raises(ValidationError) as refused:
            query_options("version=1&alias=champion")
        assert "alias" in refused.value.detail
    assert _query_validated.cache_info().currsize == 0

    # and the default version follows the serving alias here too
    settings.MDS_SERVING_ALIAS = "@production"
    assert query_options("")["version"] == VersionRef(alias="production")


def _outcome(options, data):
    try:
        return dict(options(data))
    except ValidationError as refused:
        return refused.detail
