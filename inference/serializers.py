"""``/predict`` request options and answer; the rows themselves are parsed by ``inference.parsing``."""

import copy
import functools
import math
from collections.abc import Mapping
from types import MappingProxyType

from django.conf import settings
from django.http import QueryDict
from rest_framework import serializers

from core.contract import ALIAS_PATTERN, MODEL_NAME_PATTERN, VERSION_PATTERN, VersionRef

from .services import FORMATS


class VersionRefField(serializers.RegexField):
    """``N``, ``latest``, ``alias`` or ``@alias`` as a ``VersionRef``: the one place a request's reference is
    parsed; the pattern words the refusal, as for any other field."""

    def __init__(self, **kwargs):
        super().__init__(VERSION_PATTERN, **kwargs)

    def run_validation(self, data=serializers.empty) -> VersionRef:
        # After the pattern's check: parsing cannot fail then.
        return VersionRef.parse(super().run_validation(data))


class PredictionRequestSerializer(serializers.Serializer):
    """Which model answers: ``version=N|latest|@alias`` or ``alias=champion`` (default: ``MDS_SERVING_ALIAS``),
    and with which engine; optionally ``interval=<level>`` and ``explain=true``."""

    # Unbound fields, built once; each request binds shallow copies of them. DRF deep-copies declared fields per
    # request (~0.3 ms) and building them anew costs ~0.15 ms (each __init__ gathers lazy error messages and
    # validators): as much as the model takes for one row. A shallow copy shares only what binding never changes.
    PROTOTYPES = {
        "model_name": serializers.RegexField(MODEL_NAME_PATTERN, required=False),
        "version": VersionRefField(required=False),
        "alias": serializers.RegexField(ALIAS_PATTERN, required=False),
        # Without one, the server picks the faster engine per request (``services._engine``).
        "format": serializers.ChoiceField(choices=FORMATS, default="auto"),
    }
    ON_REQUEST = {"interval": serializers.FloatField(), "explain": serializers.BooleanField()}

    def get_fields(self) -> dict:
        fields = {name: copy.copy(field) for name, field in self.PROTOTYPES.items()}
        # Only when asked for: a plain prediction pays nothing for them.
        asked = getattr(self, "initial_data", {})
        for name, field in self.ON_REQUEST.items():
            if name in asked:
                fields[name] = copy.copy(field)
        return fields

    def validate_interval(self, value: float) -> float:
        if not (math.isfinite(value) and 0 < value < 1):
            raise serializers.ValidationError("Give a level strictly between 0 and 1, such as 0.9.")
        return value

    def validate(self, attrs: dict) -> dict:
        if "version" in attrs and "alias" in attrs:
            raise serializers.ValidationError({"alias": "Give either version or alias, not both."})
        alias = attrs.pop("alias", None)
        if alias:
            attrs["version"] = VersionRef(alias=alias.removeprefix("@"))
        elif "version" not in attrs:
            # Without either, the serving alias: a training never changes what clients get, a promotion does.
            attrs["version"] = VersionRef(alias=settings.MDS_SERVING_ALIAS.removeprefix("@"))
        return attrs


def prediction_options(data: dict) -> Mapping:
    """``data`` (the query string's options and an upload's form fields) validated, read-only.

    Clients send the same options again and again, and validating them costs a tenth of a 1-row request: the answer
    to each distinct set of text options is remembered (a bounded cache). A refusal is not: it raises each time.

    Raises:
        ValidationError: as ``PredictionRequestSerializer``.
    """
    items = tuple(sorted(data.items()))
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in items):
        return _options_validated.__wrapped__(items, settings.MDS_SERVING_ALIAS)
    return _options_validated(items, settings.MDS_SERVING_ALIAS)


def query_options(query_string: str) -> Mapping:
    """The options of a request whose only options are its query string (``QUERY_STRING`` as WSGI gives it),
    validated, read-only: what ``prediction_options(request.GET.dict())`` answers, without parsing the query string
    again for a client that sends the same one again and again (a bounded cache, as ``prediction_options``).

    Raises:
        ValidationError: as ``PredictionRequestSerializer``.
    """
    return _query_validated(query_string, settings.MDS_SERVING_ALIAS)


@functools.lru_cache(maxsize=512)
def _query_validated(query_string: str, serving_alias: str) -> Mapping:
    # As Django's request.GET reads the query string: its bytes (WSGI strings are latin-1), decoded as the request.
    query = QueryDict(query_string.encode("iso-8859-1"), encoding=settings.DEFAULT_CHARSET)
    return _options_validated.__wrapped__(tuple(query.dict().items()), serving_alias)


@functools.lru_cache(maxsize=512)
def _options_validated(items: tuple, serving_alias: str) -> Mapping:
    # serving_alias: part of the key, as the default version is read from it.
    params = PredictionRequestSerializer(data=dict(items))
    params.is_valid(raise_exception=True)
    return MappingProxyType(dict(params.validated_data))


def prediction_answer(prediction) -> dict:
    """``/predict``'s JSON answer (without its request ids), built by hand: a DRF serializer bound its fields anew for
    every answer."""
    answer = {
        "predictions": prediction.values.tolist(),
        "model": {"name": prediction.name, "version": prediction.version, "format": prediction.model_format},
    }
    intervals = prediction.intervals
    if intervals is not None:
        answer["intervals"] = {
            "level": intervals.level,
            "method": intervals.method,
            "lower": intervals.lower.tolist(),
            "upper": intervals.upper.tolist(),
        }
    contributions = prediction.contributions
    if contributions is not None:
        answer["contributions"] = {
            "base": [contributions.base] * len(contributions.values),
            "features": contributions.features,
            "values": contributions.values.tolist(),
        }
    return answer
