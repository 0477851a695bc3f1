"""``VersionRef``: a version reference parsed once, into a number, ``latest`` or an alias."""

import pytest

from core.contract import VersionRef
from core.errors import ApplicationError, http_status


@pytest.mark.parametrize(
    ("text", "expected", "as_text"),
    [
        ("7", VersionRef(number=7), "7"),
        ("latest", VersionRef(), "latest"),
        ("champion", VersionRef(alias="champion"), "@champion"),
        ("@champion", VersionRef(alias="champion"), "@champion"),
        ("@latest", VersionRef(alias="latest"), "@latest"),
    ],
)
def test_a_reference_parses_into_what_it_stands_for_and_back(text, expected, as_text):
    # when
    parsed = VersionRef.parse(text)

    # then: equal and hashable, so it keys a cache; an alias prints with its @, apart from `latest`
    assert parsed == expected
    assert hash(parsed) == hash(expected)
    assert str(parsed) == as_text
    assert VersionRef.parse(str(parsed)) == parsed
    assert parsed.is_latest == (text == "latest")


@pytest.mark.parametrize("text", ["", "1.5", "-1", "1234567890", "7\n", "@", "9lives", "a b", "x" * 300])
def test_anything_else_is_a_400_naming_the_problem(text):
    # when
    with pytest.raises(ApplicationError) as refused:
        VersionRef.parse(text)

    # then
    assert http_status(refused.value) == 400
    assert refused.value.code == "invalid_version"
    assert "is no version: give a number, `latest` or an alias" in refused.value.message
    assert len(refused.value.message) < 200
    assert refused.value.extra["version"] == text[:100]


def test_a_reference_is_a_number_or_an_alias_not_both():
    with pytest.raises(ValueError):
        VersionRef(number=1, alias="champion")
