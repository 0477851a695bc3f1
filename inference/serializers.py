"""``/predict`` request options and answer; the rows themselves are parsed by ``inference.parsing``."""

import copy
import functools
import math
from collections.abc import Mapping
from types import MappingProxyType

from django.conf import settings
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


@functools.lru_cache(maxsize=512)
def _options_validated(items: tuple, serving_alias: str) -> Mapping:
    # serving_alias: part of the key, as the default version is read from it.
    params = PredictionRequestSerializer(data=dict(items))
    params.is_valid(raise_exception=True)
    return MappingProxyType(dict(params.validated_data))


class FloatListField(serializers.Field):
    """A float array as a JSON list, without a per-element field call (10k-row batches are common)."""

    def to_representation(self, value) -> list[float]:
        return value.tolist()


class PredictionSerializer(serializers.Serializer):
    # Copied per answer, as in PredictionRequestSerializer.
    PROTOTYPES = {"predictions": FloatListField(source="values"), "model": serializers.SerializerMethodField()}
    ON_REQUEST = {
        "intervals": serializers.SerializerMethodField(),
        "contributions": serializers.SerializerMethodField(),
    }

    def get_fields(self) -> dict:
        fields = {name: copy.copy(field) for name, field in self.PROTOTYPES.items()}
        for name, field in self.ON_REQUEST.items():
            if getattr(self.instance, name, None) is not None:
                fields[name] = copy.copy(field)
        return fields

    def get_model(self, prediction) -> dict:
        return {"name": prediction.name, "version": prediction.version, "format": prediction.model_format}

    def get_intervals(self, prediction) -> dict:
        intervals = prediction.intervals
        return {
            "level": intervals.level,
            "method": intervals.method,
            "lower": intervals.lower.tolist(),
            "upper": intervals.upper.tolist(),
        }

    def get_contributions(self, prediction) -> dict:
        contributions = prediction.contributions
        return {
            "base": [contributions.base] * len(contributions.values),
            "features": contributions.features,
            "values": contributions.values.tolist(),
        }
