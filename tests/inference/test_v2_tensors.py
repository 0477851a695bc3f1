"""Open Inference Protocol tensors to the feature matrix: shapes, datatypes, data forms and refusals. Pure."""

import numpy as np
import pytest

from core.tabular import TableError
from inference.v2.tensors import InputTensor, feature_matrix

FEATURES = ["a", "b", "c"]


def matrix(tensors, max_rows=100):
    return feature_matrix(tensors, FEATURES, max_rows=max_rows)


def test_a_matrix_in_any_numeric_datatype_and_data_form_gives_the_same_float32_features():
    # given
    expected = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    forms = [
        InputTensor("x", "FP64", [2, 3], [[1, 2, 3], [4, 5, 6]]),
        InputTensor("x", "INT32", [2, 3], [1, 2, 3, 4, 5, 6]),
        InputTensor("x", "FP16", [2, 3], expected.astype("<f2").tobytes()),
        InputTensor("x", "UINT8", [2, 3], expected.astype("<u1").tobytes()),
        InputTensor("x", "INT64", [2, 3], np.array([1, 2, 3, 4, 5, 6])),
    ]

    # when
    results = [matrix([form]) for form in forms]

    # then
    for result in results:
        assert result.dtype == np.float32 and result.flags.c_contiguous
        np.testing.assert_array_equal(result, expected)


def test_one_tensor_per_feature_in_any_order_with_extra_tensors_ignored():
    # when
    X = matrix(
        [
            InputTensor("c", "FP32", [2, 1], [[3], [6]]),
            InputTensor("ignored", "BYTES", [2], ["x", "y"]),
            InputTensor("a", "INT64", [2], [1, 4]),
            InputTensor("b", "FP64", [2], np.array([2.0, 5.0]).tobytes()),
        ]
    )

    # then
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(
    "tensors, code, named",
    [
        (
            [
                InputTensor("a", "FP32", [2], [1, 2]),
                InputTensor("b", "FP32", [3], [1, 2, 3]),
                InputTensor("c", "FP32", [2], [1, 2]),
            ],
            "invalid_tensor",
            "'b' has 3 rows",
        ),
        ([InputTensor("a", "FP32", [1], [1])], "missing_columns", "'b', 'c'"),
        ([InputTensor("x", "FP32", [2, 3], b"\x00" * 20)], "invalid_tensor", "24"),
        ([InputTensor("x", "FP32", [2, 3], [[1, 2, 3], [4, 5]])], "invalid_tensor", "'x'"),
        ([InputTensor("x", "BOOL", [1, 3], [True, False, True])], "invalid_tensor", "BOOL"),
        ([InputTensor("x", "FP32", [1, 3], [1, None, 3])], "invalid_tensor", "None"),
        ([InputTensor("x", "FP32", [2, 3], [[1, 2, 3], [4, "5", 6]])], "invalid_tensor", "holds '5'"),
        ([InputTensor("x", "FP64", [1, 3], [1, float("nan"), 3])], "bad_cell", "element [0, 1]"),
        ([InputTensor("x", "FP32", [1000, 3], [0] * 3000)], "invalid_tensor", "at most 300"),
        ([InputTensor("x", "FP32", "2,3", [1] * 6)], "invalid_tensor", "shape"),
    ],
)
def test_refusals_name_the_tensor_and_what_is_wrong(tensors, code, named):
    # when
    with pytest.raises(TableError) as raised:
        matrix(tensors)

    # then
    assert raised.value.code == code
    assert named in raised.value.message
