"""A ``multipart/form-data`` body already read whole, split into its fields and files: the ``curl -F`` upload.

Django's multipart parser streams through upload handlers in Python-level chunks: ~0.7 ms for a 1-row upload,
more than the model takes for it (``/predict`` answered ~550 requests/s with it against ~940/s with the same CSV
sent as ``text/csv``). A small body in memory is split on its delimiter with ``bytes.split`` instead.

The split gives exactly what Django's parser gives, or ``None`` when the body holds anything it does not handle
(a transfer encoding, a boundary string Django would find where this split would not, header folding, RFC 2231
parameters, odd file names, an epilogue, too many parts): the caller then hands the same bytes to Django.

On the inference server a request's Content-Type is read once, by ``plain_form_boundary`` when it is the plain
``multipart/form-data; boundary=...`` (``mds_project.inference_wsgi``), and ``/predict`` splits a small upload
before DRF's parsers see it (``inference.api_parts.small_upload``).
"""

import re
from typing import NamedTuple

from django.utils.http import parse_header_parameters

# Django's own check of a boundary (MultiPartParser.boundary_re).
BOUNDARY = re.compile(r"[ -~]{0,200}[!-~]")
# The Content-Type curl and browsers send: parsed by Django's parse_header_parameters (email.message) it takes ~25 µs.
PLAIN_FORM_TYPE = re.compile(r'multipart/form-data\s*;\s*boundary=(?:"([^"\\]*)"|([^\s";\\]+))\s*', re.IGNORECASE)
# More parts than this go to Django, which counts them against DATA_UPLOAD_MAX_NUMBER_FIELDS.
MAX_PARTS = 32
# Django reads a part's headers in 1024-byte chunks; longer headers go to it.
MAX_HEADER_BYTES = 1020
# `; name=value` or `; name="value"`: the parameters of a plain Content-Disposition (no escapes, no RFC 2231).
PARAMETER = re.compile(r';\s*([!#$%&\'+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"([^"\\]*)"|([^;\s"]*))\s*')
# The Content-Disposition curl and browsers send, which the parameters' loop would read the same way, faster.
CURL_DISPOSITION = re.compile(r'form-data; name="([^"\\*]*)"(?:; filename="([^"\\*]*)")?')


class Part(NamedTuple):
    name: str
    # None for a plain field; a file part's (non-empty) file name otherwise.
    filename: str | None
    content_type: str
    data: bytes


def plain_form_boundary(content_type: str) -> str | None:
    """The boundary parameter of ``multipart/form-data; boundary=...`` (the only parameter), as Django's
    ``parse_header_parameters`` reads it; ``None`` for any other Content-Type, which is left to that parse."""
    plain = PLAIN_FORM_TYPE.fullmatch(content_type)
    if plain is None:
        return None
    if plain.group(1) is not None:
        return plain.group(1)
    boundary = plain.group(2)
    # email.utils.unquote, under Django's parse, takes the angle brackets off an unquoted <value>.
    return None if boundary.startswith("<") and boundary.endswith(">") and len(boundary) > 1 else boundary


def form_boundary(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type, if it is one Django accepts."""
    boundary = plain_form_boundary(content_type)
    if boundary is None:
        main, params = parse_header_parameters(content_type)
        boundary = params.get("boundary") if main == "multipart/form-data" else None
    return valid_boundary(boundary)


def valid_boundary(boundary: str | None) -> bytes | None:
    """``boundary`` as bytes if Django's multipart parser accepts it."""
    if not boundary or not BOUNDARY.fullmatch(boundary):
        return None
    return boundary.encode("ascii")


def form_split(body: bytes, boundary: bytes) -> list[Part] | None:
    """The parts of ``body`` in order, or ``None`` if Django should parse it (see the module's docstring)."""
    dash = b"--" + boundary
    segments = (b"\r\n" + body).split(b"\r\n" + dash)
    # Django splits on the dash-boundary wherever it is, even without CRLF before it: the same places or none.
    if len(segments) - 1 != body.count(dash) or not 3 <= len(segments) <= MAX_PARTS + 2:
        return None
    # segments[0] is the preamble, which Django skips too; the last follows the closing delimiter.
    if segments[-1][:2] != b"--" or segments[-1][2:].strip():
        return None
    parts = []
    for segment in segments[1:-1]:
        part = _part(segment)
        if part is None:
            return None
        parts.append(part)
    return parts


def _part(segment: bytes) -> Part | None:
    """One part: CRLF (the end of its delimiter line), header lines, an empty line, its data."""
    header_end = segment.find(b"\r\n\r\n")
    if not segment.startswith(b"\r\n") or header_end < 2 or header_end > MAX_HEADER_BYTES:
        return None
    try:
        lines = segment[2:header_end].decode().split("\r\n")
    except UnicodeDecodeError:
        return None
    headers = {}
    for line in lines:
        header, colon, value = line.partition(":")
        if not colon or header != header.strip() or not header:
            return None
        headers[header.lower()] = value.strip()
    disposition = headers.pop("content-disposition", None)
    content_type = headers.pop("content-type", "").partition(";")[0].strip().lower()
    # Anything else (a transfer encoding, a content length) is for Django to handle as it does.
    if disposition is None or headers:
        return None
    disposition_params = _disposition_params(disposition)
    if disposition_params is None or not disposition_params[0].strip():
        return None
    name, filename = disposition_params
    if filename is not None and (
        filename != filename.strip()
        or filename in (".", "..")
        or "/" in filename
        or "\\" in filename
        or "&" in filename
    ):
        # Django sanitizes these (a path's last component, HTML entities): let it.
        return None
    return Part(name=name.strip(), filename=filename, content_type=content_type, data=segment[header_end + 4 :])


def _disposition_params(disposition: str) -> tuple[str, str | None] | None:
    """``form-data; name="file"; filename="a.csv"`` as its name (``""`` if none) and non-empty file name, if any;
    ``None`` unless it is that plain."""
    curl = CURL_DISPOSITION.fullmatch(disposition)
    if curl is not None:
        return curl.group(1), curl.group(2) or None
    main, semicolon, rest = disposition.partition(";")
    if main.strip().lower() != "form-data" or "*" in rest or "\\" in rest or not semicolon:
        return None
    rest = semicolon + rest
    params: dict[str, str] = {}
    position = 0
    for match in PARAMETER.finditer(rest):
        if match.start() != position:
            return None
        params[match.group(1).lower()] = match.group(2) if match.group(2) is not None else match.group(3)
        position = match.end()
    if position != len(rest):
        return None
    return params.get("name", ""), params.get("filename") or None
