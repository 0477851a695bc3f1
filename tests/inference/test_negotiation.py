"""/predict's answer format from the Accept header, q-values included."""

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from inference.api_parts import CSVRenderer, FastJSONRenderer, QualityNegotiation

JSON, CSV = "application/json", "text/csv"


def negotiated(accept: str | None) -> str:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().post("/predict", **headers))
    renderer, media_type = QualityNegotiation().select_renderer(request, [FastJSONRenderer(), CSVRenderer()])
    assert media_type == renderer.media_type
    return media_type


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # The usual headers
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        (JSON, JSON),
        (CSV, CSV),
        ("text/csv; charset=utf-8", CSV),
        ("text/csv, */*", CSV),
        ("application/json, text/plain, */*", JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        # None of ours: JSON rather than a 406
        ("text/html", JSON),
        ("application/xml", JSON),
        # q-values: the higher one wins, whatever the order or specificity
        ("text/csv;q=0", JSON),
        ("text/csv; q=0.0, */*", JSON),
        ("text/csv;q=0, application/json;q=0", JSON),
        ("application/json;q=0.5, text/csv", CSV),
        ("text/csv;q=0.4, application/json;q=0.5", JSON),
        ("text/csv;q=0.1, */*", JSON),
        ("*/*;q=0.5, text/csv", CSV),
        # the most specific range sets a type's q: JSON refused, CSV accepted by */*
        ("application/json;q=0, */*", CSV),
        # equal q: the more specific range, then JSON; a q that is not a number in [0, 1] counts as 1
        ("application/json, text/csv", JSON),
        ("text/csv;q=0.5, */*;q=0.5", CSV),
        ("text/csv;q=2, application/json;q=0.9", CSV),
        ("text/csv;q=x, application/json;q=0.9", CSV),
    ],
)
def test_the_accept_header_picks_the_answer_format(accept, expected):
    assert negotiated(accept) == expected


def test_a_header_is_answered_alike_whether_remembered_or_too_long_to_be():
    # given: a short header, asked twice (the second answer remembered), and one too long to keep
    from inference.api_parts import ACCEPT_REMEMBERED_CHARS

    long = "text/csv;q=0.9, " + ", ".join(f"application/x-{i}" for i in range(60)) + ", application/json;q=0.1"
    assert len(long) > ACCEPT_REMEMBERED_CHARS

    # when
    answers = [negotiated("text/csv;q=0.9, application/json;q=0.1") for _ in range(2)] + [negotiated(long)]

    # then
    assert answers == [CSV, CSV, CSV]
