"""A calendar version's timestamp tensor: BYTES in every encoding, the calendar features derived as /predict derives
them, and refusals naming the tensor and element. Pure."""

import struct

import numpy as np
import pytest

from core.calendar import CALENDAR_FEATURES, calendar_matrix, parse_timestamps
from core.tabular import TableError
from inference.v2.tensors import InputTensor
from inference.v2.timestamps import calendar_feature_matrix, metadata_inputs

OWN = ["a", "b"]
FEATURES = [*OWN, *CALENDAR_FEATURES]
STAMPS = ["2024-03-01T15:00:00Z", "2024-12-31 23:30", "2025-06-15T08:00:00+02:00"]


def matrix(tensors, max_rows=100):
    return calendar_feature_matrix(tensors, FEATURES, calendar_from="timestamp", max_rows=max_rows)


def length_prefixed(texts):
    return b"".join(struct.pack("<I", len(text.encode())) + text.encode() for text in texts)


def own_columns():
    return [InputTensor("a", "FP32", [3], [1, 2, 3]), InputTensor("b", "INT64", [3, 1], [[4], [5], [6]])]


def test_every_bytes_encoding_gives_the_features_predict_derives():
    # given: /predict's derivation of the same texts
    expected = np.column_stack(
        [[1, 2, 3], [4, 5, 6], calendar_matrix(parse_timestamps(STAMPS, column="timestamp"))]
    ).astype(np.float32)
    encodings = [
        InputTensor("timestamp", "BYTES", [3], STAMPS),
        InputTensor("timestamp", "BYTES", [3, 1], [[text] for text in STAMPS]),
        InputTensor("timestamp", "BYTES", [3], memoryview(length_prefixed(STAMPS))),
        InputTensor("timestamp", "BYTES", [3], [text.encode() for text in STAMPS]),
    ]

    # when
    results = [matrix([*own_columns(), stamp]) for stamp in encodings]
    as_matrix = matrix([InputTensor("x", "FP32", [3, 2], [[1, 4], [2, 5], [3, 6]]), encodings[2]])

    # then
    for result in [*results, as_matrix]:
        assert result.dtype == np.float32 and result.shape == (3, 10) and result.flags.c_contiguous
        np.testing.assert_array_equal(result, expected)


def test_a_version_of_the_timestamp_alone_needs_only_its_tensor():
    # when
    X = calendar_feature_matrix(
        [InputTensor("when", "BYTES", [1], ["2024-01-01"])], list(CALENDAR_FEATURES), calendar_from="when", max_rows=5
    )

    # then
    np.testing.assert_array_equal(X, calendar_matrix(parse_timestamps(["2024-01-01"], column="when")))


def test_metadata_lists_the_timestamp_instead_of_the_derived_features():
    # when
    inputs = metadata_inputs(FEATURES, "timestamp")

    # then
    assert inputs == [
        {"name": "a", "datatype": "FP32", "shape": [-1]},
        {"name": "b", "datatype": "FP32", "shape": [-1]},
        {"name": "timestamp", "datatype": "BYTES", "shape": [-1]},
    ]
    assert [entry["name"] for entry in metadata_inputs(OWN, None)] == OWN


@pytest.mark.parametrize(
    "stamp, code, named, extra",
    [
        (
            InputTensor("timestamp", "BYTES", [3], ["2024-01-01", "soon", "2024-01-03"]),
            "bad_timestamp",
            "Tensor 'timestamp', element [1]: 'soon'",
            {"tensor": "timestamp", "element": [1]},
        ),
        (
            InputTensor("timestamp", "BYTES", [3], length_prefixed(["2024-01-01", "2024-01-02", ""])),
            "bad_timestamp",
            "element [2]: ''",
            {"tensor": "timestamp", "element": [2]},
        ),
        (
            InputTensor("timestamp", "BYTES", [3], ["2024-01-01", 20240102, "2024-01-03"]),
            "bad_timestamp",
            "element [1]: 20240102",
            {"tensor": "timestamp", "element": [1]},
        ),
        (
            InputTensor("timestamp", "BYTES", [3], [b"2024-01-01", b"\xff\xfe", b"2024-01-03"]),
            "bad_timestamp",
            "element [1]",
            {"tensor": "timestamp", "element": [1]},
        ),
        (
            InputTensor("timestamp", "BYTES", [3], length_prefixed(STAMPS)[:-3]),
            "invalid_tensor",
            "element [2]: a length of",
            {"tensor": "timestamp"},
        ),
        (
            InputTensor("timestamp", "BYTES", [3], length_prefixed(STAMPS) + b"\x01"),
            "invalid_tensor",
            "element [3]: 1 bytes where a 4-byte length",
            {"tensor": "timestamp"},
        ),
        (
            InputTensor("timestamp", "BYTES", [3], STAMPS[:2]),
            "invalid_tensor",
            "2 elements of data for shape [3]",
            {"tensor": "timestamp"},
        ),
        (
            InputTensor("timestamp", "BYTES", [3, 2], STAMPS * 2),
            "invalid_tensor",
            "shape [N]",
            {"tensor": "timestamp"},
        ),
        (
            InputTensor("timestamp", "FP64", [3], [1.7e9] * 3),
            "invalid_tensor",
            "sent as BYTES",
            {"tensor": "timestamp"},
        ),
        (InputTensor("timestamp", "BYTES", [2], STAMPS[:2]), "invalid_tensor", "2 timestamps for 3 rows", None),
    ],
)
def test_a_bad_timestamp_tensor_is_refused_naming_the_tensor_and_element(stamp, code, named, extra):
    # when
    with pytest.raises(TableError) as raised:
        matrix([*own_columns(), stamp])

    # then
    assert raised.value.code == code
    assert named in raised.value.message
    if extra is not None:
        assert {key: raised.value.extra[key] for key in extra} == extra


@pytest.mark.parametrize(
    "tensors, code, named, missing",
    [
        (own_columns(), "missing_columns", "'timestamp'", ["timestamp"]),
        ([InputTensor("x", "FP32", [3, 2], [0] * 6)], "missing_columns", "BYTES", ["timestamp"]),
        ([InputTensor("timestamp", "BYTES", [3], STAMPS)], "missing_columns", "'a', 'b'", ["a", "b"]),
        (
            [own_columns()[0], InputTensor("timestamp", "BYTES", [3], STAMPS)],
            "missing_columns",
            "'b'",
            ["b"],
        ),
        (
            [*own_columns(), *(InputTensor(name, "FP32", [3], [0, 0, 0]) for name in CALENDAR_FEATURES)],
            "calendar_features_sent",
            "send the tensor 'timestamp'",
            None,
        ),
        (
            [InputTensor("x", "FP32", [3, 10], [0] * 30)],
            "calendar_features_sent",
            "derived by the model from the timestamp",
            None,
        ),
        (
            [
                *own_columns(),
                InputTensor("timestamp", "BYTES", [3], STAMPS),
                InputTensor("hour_sin", "FP32", [3], [0] * 3),
            ],
            "calendar_features_sent",
            "not the calendar features",
            None,
        ),
    ],
)
def test_a_missing_timestamp_or_calendar_features_sent_instead_are_refused(tensors, code, named, missing):
    # when
    with pytest.raises(TableError) as raised:
        matrix(tensors)

    # then
    assert raised.value.code == code
    assert named in raised.value.message
    if missing is not None:
        assert raised.value.extra["missing"] == missing
