"""DRF plumbing for ``/predict``: raw CSV/JSON bodies, small multipart uploads, a CSV renderer, content
negotiation and throttling.

Tokens are checked by ``core.auth.TokenAuthentication``, which remembers a checked token for
``MDS_TOKEN_CACHE_TTL`` seconds: the hot path skips the database.
"""

import functools
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer

# DRF's own helpers, which its stubs predate.
from rest_framework.utils.mediatypes import _MediaType, order_parsed_by_precedence  # type: ignore[attr-defined]

from core.errors import TooLarge
from core.throttles import SettingRateThrottle

from .multipart import form_split, valid_boundary


def body_too_large(size: int) -> TooLarge:
    limit = settings.MDS_PREDICT_MAX_BYTES
    return TooLarge(
        f"The request body is {size} bytes; at most {limit} are accepted.",
        extra={"bytes": size, "max_bytes": limit},
    )


class RawBodyParser(BaseParser):
    """Hands the body to the service as bytes: CSV and MLflow JSON are parsed there, against the model."""

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return b""
        data = stream.read(settings.MDS_PREDICT_MAX_BYTES + 1)
        if len(data) > settings.MDS_PREDICT_MAX_BYTES:
            raise body_too_large(len(data))
        return data


class CSVBodyParser(RawBodyParser):
    media_type = "text/csv"


class JSONBodyParser(RawBodyParser):
    media_type = "application/json"


def small_upload(request) -> tuple[bytes, dict[str, str]] | None:
    """The ``file`` and the other form fields of a small multipart upload, split in memory before DRF's parsers
    would see it (``inference.multipart``); ``None`` when ``request.data`` should take the request.

    ``request.data`` would parse a multipart request's Content-Type twice more, build a ``QueryDict`` and an
    uploaded file and copy both into another: with this, the ``curl -F file=@rows.csv`` upload costs about what
    the same rows sent as ``text/csv`` do. A body of known length up to ``MDS_PREDICT_MAX_BYTES`` and
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is read whole as ``request.body``, which Django keeps: ``request.data``
    parses the same bytes when the split declines them (anything large, chunked, unusual or over Django's form
    limits), finds no file named ``file`` (an error ``request.data``'s path gives) or other files.
    """
    django_request = request._request
    if django_request.content_type != "multipart/form-data":
        return None
    boundary = valid_boundary(django_request.content_params.get("boundary"))
    meta = django_request.META
    length = _content_length(meta)
    if boundary is None or length is None or length > _small_upload_max() or "HTTP_TRANSFER_ENCODING" in meta:
        return None
    body = django_request.body
    parts = form_split(body, boundary) if len(body) == length else None
    if parts is None or not _within_form_limits(parts):
        return None
    encoding = request.parser_context["encoding"]  # what DRF hands its parsers
    file, fields = None, {}
    for part in parts:
        # As request.FILES.get("file") and request.data's other keys: the last value of each name.
        if part.filename is None:
            if part.name != "file":
                fields[part.name] = part.data.decode(encoding, errors="replace")
        elif part.name == "file":
            file = part.data
        else:
            return None  # request.data holds other files among the fields, as uploaded files: its path takes them
    return None if file is None else (file, fields)


def _small_upload_max() -> int:
    """The largest body ``small_upload`` reads: ``request.body`` refuses one over DATA_UPLOAD_MAX_MEMORY_SIZE."""
    limit, data_limit = settings.MDS_PREDICT_MAX_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return limit if data_limit is None else min(limit, data_limit)


def _within_form_limits(parts) -> bool:
    """Whether Django would take these parts (DATA_UPLOAD_MAX_NUMBER_FILES, DATA_UPLOAD_MAX_NUMBER_FIELDS,
    DATA_UPLOAD_MAX_MEMORY_SIZE); if not, its parser refuses them, as it does for any form."""
    fields = [part for part in parts if part.filename is None]
    max_files = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    if max_files is not None and len(parts) - len(fields) > max_files:
        return False
    if not fields:
        return True
    max_fields, max_bytes = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if max_fields is not None and len(fields) > max_fields:
        return False
    return max_bytes is None or sum(len(part.name) + 2 + len(part.data) for part in fields) <= max_bytes


class UploadParser(MultiPartParser):
    """Django's multipart parser (through DRF's), its refusals of a form in the API's error format.

    Small uploads to ``/predict`` are split before it (``small_upload``); this takes the others.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        # Django's refusals of a form are SuspiciousOperations, which DRF leaves to Django (an HTML 400).
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig as exc:
            raise TooLarge(
                f"The form's fields hold more than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
                extra={"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
            ) from exc
        except (TooManyFieldsSent, TooManyFilesSent) as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc


def _content_length(meta) -> int | None:
    try:
        length = int(meta.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode() if isinstance(data, str) else data


class FastJSONRenderer(JSONRenderer):
    """orjson instead of ``json``: 10k predictions render in 0.5 ms instead of 7 ms (float formatting)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import orjson

        try:
            return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            return super().render(data, accepted_media_type, renderer_context)


class QualityNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with the Accept header's q-values, which DRF ignores (``text/csv;q=0`` would get CSV).

    A renderer's quality is the q of the most specific media range that matches it (RFC 9110 §12.5.1); the best
    wins. On equal q, DRF's order decides: the more specific range (``text/csv, */*`` is CSV), then the first
    renderer (JSON). A client that accepts none of them gets JSON too, not a 406.
    """

    def select_parser(self, request, parsers):
        # DRF parses the request's Content-Type once per parser it tries, ~25 µs each when the header has
        # parameters (a multipart boundary, a charset); these parsers name bare media types: the main type decides.
        media_type = request.content_type.partition(";")[0].strip().lower()
        for parser in parsers:
            if parser.media_type == media_type:
                return parser
        return super().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        # Read from META: request.headers builds a mapping of every header.
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        choose = _preferred if len(accept) <= ACCEPT_REMEMBERED_CHARS else _preferred.__wrapped__
        best = renderers[choose(accept, tuple(renderer.media_type for renderer in renderers))]
        return best, best.media_type


# Longer Accept headers are parsed on every request rather than kept.
ACCEPT_REMEMBERED_CHARS = 512


@functools.lru_cache(maxsize=256)
def _preferred(accept: str, media_types: tuple[str, ...]) -> int:
    """The index of the media type ``accept`` prefers (the first when it accepts none). Remembered per header, as
    clients send the same one again and again (a bounded cache)."""
    # DRF's parse of the header, which caps its length and number of media ranges.
    request = SimpleNamespace(headers={"accept": accept})
    parsed = QualityNegotiation()._get_parsed_accept_list(request)  # type: ignore[attr-defined]
    by_precedence = order_parsed_by_precedence(parsed)

    def preference(index: int) -> tuple[float, int]:
        media_type = _MediaType(media_types[index])
        for media_ranges in by_precedence:
            matching = [media_range for media_range in media_ranges if media_type.match(media_range)]
            if matching:
                return max(_quality(media_range) for media_range in matching), matching[0].precedence
        return 0.0, 0

    best = max(range(len(media_types)), key=preference)
    return best if preference(best)[0] > 0 else 0


def _quality(media_range: _MediaType) -> float:
    """The range's q, 1 when absent or not a number in [0, 1] (as Django's ``MediaType.quality``)."""
    try:
        q = float(media_range.params.get("q", 1))
    except ValueError:
        return 1.0
    return q if 0 <= q <= 1 else 1.0


class PredictThrottle(SettingRateThrottle):
    """Predictions per user (``MDS_THROTTLE_PREDICT``, off by default): no cache round trip while it is off."""

    scope = "predict"
    setting = "MDS_THROTTLE_PREDICT"
