"""Multipart uploads to /predict: the in-memory split gives what Django's parser gives, or hands the body to it."""

import base64
import io

import pytest
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser
from django.test import RequestFactory
from django.utils.http import parse_header_parameters
from rest_framework.request import Request

from inference.api_parts import UploadParser, small_upload
from inference.multipart import form_boundary, form_split, plain_form_boundary
from tests.factories import csv_bytes, weather_frame

ROWS = weather_frame(3)
CSV = csv_bytes(ROWS)
# The same rows with CRLF line ends, a quoted cell holding a line break, and a line that starts with dashes.
CSV_CRLF = CSV.replace(b"\n", b"\r\n") + b'"--not a boundary\r\nin a cell",1,2\r\n'


def form(boundary: str, parts: list[tuple[str, bytes]], *, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    """A multipart body: each part as (its header lines, its data)."""
    dash = b"--" + boundary.encode()
    body = preamble + b"".join(
        dash + b"\r\n" + headers.encode() + b"\r\n\r\n" + data + b"\r\n" for headers, data in parts
    )
    return body + dash + b"--\r\n" + epilogue


def file_part(data: bytes = CSV, name: str = "file", filename: str = "rows.csv") -> tuple[str, bytes]:
    return f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: text/csv', data


def field(name: str, value: str) -> tuple[str, bytes]:
    return f'Content-Disposition: form-data; name="{name}"', value.encode()


def django_parse(body: bytes, content_type: str) -> tuple[dict, dict]:
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    data, files = MultiPartParser(meta, io.BytesIO(body), [MemoryFileUploadHandler()], "utf-8").parse()
    return (
        {key: data.getlist(key) for key in data},
        {key: [(upload.name, upload.read()) for upload in files.getlist(key)] for key in files},
    )


def split(body: bytes, content_type: str) -> tuple[dict, dict] | None:
    boundary = form_boundary(content_type)
    parts = form_split(body, boundary) if boundary else None
    if parts is None:
        return None
    data: dict[str, list] = {}
    files: dict[str, list] = {}
    for part in parts:
        if part.filename is None:
            data.setdefault(part.name, []).append(part.data.decode())
        else:
            files.setdefault(part.name, []).append((part.filename, part.data))
    return data, files


SPLIT_AS_DJANGO = {
    "curl -F": ("b1", [file_part()], {}),
    "with every form field": (
        "b1",
        [
            file_part(),
            field("model_name", "rf_regressor"),
            field("version", "3"),
            field("format", "onnx"),
            field("interval", "0.9"),
            field("explain", "true"),
        ],
        {},
    ),
    "CRLF inside the CSV": ("b1", [file_part(CSV_CRLF)], {}),
    "a boundary curl would choose": ("------------------------d74496d66958873e", [file_part()], {}),
    "a boundary with spaces and quotes around it": ("a b=c", [file_part()], {"quoted": True}),
    "a preamble": ("b1", [file_part()], {"preamble": b"ignore me\r\n"}),
    "an empty file": ("b1", [file_part(b"")], {}),
    "a field before the file, a UTF-8 value": ("b1", [field("note", "température"), file_part()], {}),
    "an empty file name (a field, as for Django)": ("b1", [file_part(filename="")], {}),
    "a field named twice": ("b1", [file_part(), field("version", "1"), field("version", "2")], {}),
    "a file name with spaces and a semicolon": ("b1", [file_part(filename="my rows; 2026.csv")], {}),
    "two files": ("b1", [file_part(), file_part(CSV_CRLF, name="other")], {}),
}


@pytest.mark.parametrize("case", SPLIT_AS_DJANGO)
def test_the_split_gives_what_djangos_parser_gives(case):
    # given
    boundary, parts, options = SPLIT_AS_DJANGO[case]
    body = form(boundary, parts, preamble=options.get("preamble", b""))
    content_type = (
        f'multipart/form-data; boundary="{boundary}"'
        if options.get("quoted")
        else (f"multipart/form-data; boundary={boundary}")
    )

    # when
    ours = split(body, content_type)

    # then
    assert ours is not None
    assert ours == django_parse(body, content_type)


HANDED_TO_DJANGO = {
    "base64 transfer encoding": form(
        "b1",
        [
            (
                'Content-Disposition: form-data; name="file"; filename="a.csv"\r\nContent-Transfer-Encoding: base64',
                base64.b64encode(CSV),
            )
        ],
    ),
    "the boundary inside the data without CRLF before it": form("b1", [file_part(b"x--b1y\r\n1,2")]),
    "no closing delimiter": form("b1", [file_part()])[: -len(b"--b1--\r\n")],
    "an epilogue with text": form("b1", [file_part()], epilogue=b"more\r\n"),
    "an RFC 2231 file name": form(
        "b1", [("Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''r%C3%A9.csv", CSV)]
    ),
    "a path as file name": form("b1", [file_part(filename="../etc/rows.csv")]),
    "bare LF line ends": form("b1", [file_part()]).replace(b"\r\n", b"\n"),
    "a part without headers": b"--b1\r\n\r\ndata\r\n--b1--\r\n",
    "too many parts": form("b1", [file_part(), *(field(f"f{index}", "x") for index in range(40))]),
}


@pytest.mark.parametrize("case", HANDED_TO_DJANGO)
def test_what_the_split_does_not_handle_is_left_to_django(case):
    # when
    ours = split(HANDED_TO_DJANGO[case], "multipart/form-data; boundary=b1")

    # then
    assert ours is None


def test_a_content_type_django_refuses_has_no_boundary():
    # then
    assert form_boundary("multipart/form-data") is None
    assert form_boundary("multipart/mixed; boundary=b1") is None
    assert form_boundary("multipart/form-data; boundary=" + "x" * 300) is None
    assert form_boundary('multipart/form-data; boundary="a b"') == b"a b"
    assert form_boundary("Multipart/Form-Data;boundary=x") == b"x"
    assert form_boundary("multipart/form-data; charset=utf-8; boundary=x") == b"x"


CONTENT_TYPES = [
    "multipart/form-data; boundary=b1",
    "multipart/form-data; boundary=------------------------d74496d66958873e",
    'multipart/form-data; boundary="a b=c"',
    'multipart/form-data; boundary="a;b"',
    "Multipart/Form-Data;BOUNDARY=x",
    "multipart/form-data ;  boundary=x  ",
    "multipart/form-data; boundary=<x>",
    'multipart/form-data; boundary="<x>"',
    "multipart/form-data; boundary=<",
    "multipart/form-data; boundary=a(b)",
    "multipart/form-data; boundary=x; charset=utf-8",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary",
    "multipart/mixed; boundary=x",
    "multipart/form-data",
    " multipart/form-data; boundary=x",
    "text/csv",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_a_plain_form_content_type_is_read_as_django_reads_it(content_type):
    # when
    ours = plain_form_boundary(content_type)
    main, params = parse_header_parameters(content_type)

    # then: the boundary Django reads, or None and Django's parse decides
    if ours is not None:
        assert (main, params) == ("multipart/form-data", {"boundary": ours})


def test_the_curl_content_type_is_read_without_djangos_parse():
    # then
    assert plain_form_boundary("multipart/form-data; boundary=------------------------d74496d66958873e") == (
        "------------------------d74496d66958873e"
    )
    assert plain_form_boundary('multipart/form-data; boundary="a b=c"') == "a b=c"
    assert plain_form_boundary("multipart/form-data; boundary=<x>") is None


def drf_request(body: bytes, content_type: str) -> Request:
    """A request as /predict's view sees it: Django's, wrapped by DRF with the view's multipart parser."""
    return Request(RequestFactory().generic("POST", "/predict", body, content_type=content_type), [UploadParser()])


def through_request_data(body: bytes, content_type: str) -> tuple[bytes, dict] | None:
    """What /predict takes from ``request.data``: the ``file``, the other fields (the last value of each)."""
    request = drf_request(body, content_type)
    data = request.data
    upload = request.FILES.get("file")
    return None if upload is None else (upload.read(), {key: value for key, value in data.items() if key != "file"})


@pytest.mark.parametrize("case", SPLIT_AS_DJANGO)
def test_a_small_upload_gives_predict_what_request_data_gives(case):
    # given
    boundary, parts, options = SPLIT_AS_DJANGO[case]
    body = form(boundary, parts, preamble=options.get("preamble", b""))
    content_type = f'multipart/form-data; boundary="{boundary}"'

    # when
    ours = small_upload(drf_request(body, content_type))

    # then: None where there is no file named `file` (request.data's path then says so) or other files (which
    # request.data holds among the fields)
    if ours is None:
        assert case in ("an empty file name (a field, as for Django)", "two files")
    else:
        assert ours == through_request_data(body, content_type)


def test_form_fields_are_read_in_the_requests_charset():
    # given
    body = form("b1", [field("note", "x"), file_part()]).replace(b"x\r\n", "température\r\n".encode("latin-1"))
    content_type = "multipart/form-data; boundary=b1; charset=latin-1"

    # when
    ours = small_upload(drf_request(body, content_type))

    # then
    assert ours == (CSV, {"note": "température"}) == through_request_data(body, content_type)


@pytest.mark.parametrize("case", HANDED_TO_DJANGO)
def test_what_the_split_declines_request_data_still_parses(case):
    # given
    body = HANDED_TO_DJANGO[case]
    request = drf_request(body, "multipart/form-data; boundary=b1")

    # when
    ours = small_upload(request)

    # then: the body Django kept is parsed as if nothing had read it
    assert ours is None
    request_data = request.FILES.get("file")
    expected = through_request_data(body, "multipart/form-data; boundary=b1")
    assert (request_data.read() if request_data else None) == (expected[0] if expected else None)


def test_a_large_or_chunked_upload_is_left_to_request_data(settings):
    # given
    body = form("b1", [file_part()])
    chunked = drf_request(body, "multipart/form-data; boundary=b1")
    chunked._request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body) - 1
    large = drf_request(body, "multipart/form-data; boundary=b1")

    # then
    assert small_upload(chunked) is None
    assert small_upload(large) is None
    assert large.FILES["file"].read() == CSV


def upload(api_client, body: bytes, boundary: str = "b1", query: str = ""):
    content_type = f'multipart/form-data; boundary="{boundary}"'
    return api_client.generic("POST", f"/predict{query}", body, content_type=content_type)


def test_the_form_fields_of_an_upload_choose_the_model_and_the_options(api_client, model_name, train):
    # given: a version, and rows with CRLF line ends uploaded as curl -F sends them, every option in the form
    version = train()["registered_version"]
    rows = CSV.replace(b"\n", b"\r\n")
    options = {"model_name": model_name, "version": str(version), "format": "sklearn", "interval": "0.9"}
    body = form(
        "----x", [*(field(name, value) for name, value in options.items()), field("explain", "true"), file_part(rows)]
    )

    # when
    answer = upload(api_client, body, "----x")
    query = "&".join(f"{name}={value}" for name, value in options.items())
    expected = api_client.generic("POST", f"/predict?{query}&explain=true", CSV, content_type="text/csv")

    # then
    assert answer.status_code == 200, answer.json()
    assert answer.json()["model"] == {"name": model_name, "version": version, "format": "sklearn"}
    assert answer.json()["predictions"] == expected.json()["predictions"]
    assert answer.json()["intervals"] == expected.json()["intervals"]
    assert answer.json()["contributions"] == expected.json()["contributions"]


def test_without_a_file_too_large_or_unusual_an_upload_is_answered_as_before(api_client, model_name, train, settings):
    # given
    version = train()["registered_version"]
    query = f"?model_name={model_name}&version={version}&format=onnx"
    base64_body = form(
        "b1",
        [
            (
                'Content-Disposition: form-data; name="file"; filename="a.csv"\r\nContent-Transfer-Encoding: base64',
                base64.b64encode(CSV),
            )
        ],
    )

    # when
    no_file = upload(api_client, form("b1", [field("version", str(version))]), query=query)
    plain = upload(api_client, form("b1", [file_part()]), query=query)
    encoded = upload(api_client, base64_body, query=query)
    settings.MDS_PREDICT_MAX_BYTES = len(CSV) - 1
    too_large = upload(api_client, form("b1", [file_part()]), query=query)

    # then
    assert no_file.status_code == 400 and no_file.json()["code"] == "no_input"
    assert plain.status_code == 200 and len(plain.json()["predictions"]) == len(ROWS)
    assert encoded.status_code == 200 and encoded.json()["predictions"] == plain.json()["predictions"]
    assert too_large.status_code == 413 and too_large.json()["code"] == "too_large"


def test_fields_over_djangos_form_limits_are_refused_in_the_apis_error_format(api_client, settings, db):
    # given: form fields over Django's limits, in bodies the split would take
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    large = form("b1", [field("note", "x" * 200), file_part()])
    many = form("b1", [*(field(f"f{index}", "x") for index in range(6)), file_part()])

    # when
    too_large, too_many = upload(api_client, large), upload(api_client, many)

    # then
    assert too_large.status_code == 413 and too_large.json()["code"] == "too_large"
    assert too_many.status_code == 400 and too_many.json()["code"] == "parse_error"


def test_more_files_than_django_takes_are_refused_as_django_refuses_them(api_client, settings, db):
    # given
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1
    body = form("b1", [file_part(), file_part(name="other")])

    # when
    answer = upload(api_client, body)

    # then
    assert answer.status_code == 400 and answer.json()["code"] == "parse_error"
