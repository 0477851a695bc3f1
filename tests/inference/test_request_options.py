"""/predict's options (query string and form fields): validated once per distinct set, refused every time."""

import pytest
from rest_framework.exceptions import ValidationError

from core.contract import VersionRef
from inference.serializers import _options_validated, prediction_options


@pytest.fixture(autouse=True)
def _forget():
    _options_validated.cache_clear()
    yield
    _options_validated.cache_clear()


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
