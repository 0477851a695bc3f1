"""Open Inference Protocol tensors to a feature matrix, and predictions back to tensors. Pure: no Django.

A request gives the features either as one 2-D tensor ``[N, F]`` whose columns are the version's features in its
signature's order, or as one tensor per feature, named as the column, of shape ``[N]`` (or ``[N, 1]``). Tensors
named as no feature are ignored, as ``/predict`` ignores extra columns. Numbers of any integer or floating-point
datatype are accepted and computed in float32, as ``/predict``'s; a value that is not finite in float32 is refused,
naming the tensor and the element.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import quoted
from core.tabular import TableError

# The protocol's numeric datatypes, as little-endian numpy types (raw and binary data are little-endian).
DTYPES: dict[str, np.dtype] = {
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
# Predictions and interval bounds: float64, as /predict's JSON and the prediction log hold them (a 1-row answer
# costs the same either way; numpy clients get the dtype /predict's JSON gives them).
OUTPUT_DATATYPE = "FP64"
PREDICTIONS, LOWER, UPPER = "predictions", "lower", "upper"


@dataclass
class InputTensor:
    """One input as a request gives it: ``data`` is JSON (a flat or nested list), raw little-endian bytes, or a
    numpy array (gRPC's typed contents)."""

    name: str
    datatype: str
    shape: list[int]
    data: Any
    parameters: dict = field(default_factory=dict)


@dataclass
class OutputTensor:
    name: str
    values: np.ndarray

    @property
    def datatype(self) -> str:
        return OUTPUT_DATATYPE

    @property
    def shape(self) -> list[int]:
        return list(self.values.shape)

    def raw(self) -> bytes:
        return np.ascontiguousarray(self.values, dtype="<f8").tobytes()


def tensor_error(message: str, name: str, **extra: Any) -> TableError:
    return TableError(message, code="invalid_tensor", extra={"tensor": name, **extra})


def tensor_values(tensor: InputTensor, *, max_elements: int) -> np.ndarray:
    """The tensor's elements as a numpy array of its shape.

    Raises:
        TableError: ``invalid_tensor``, naming the tensor: an unknown or non-numeric datatype, a bad shape, more
            than ``max_elements`` elements, or data that does not fill the shape.
    """
    name = tensor.name
    dtype = DTYPES.get(tensor.datatype)
    if dtype is None:
        accepted = ", ".join(DTYPES)
        raise tensor_error(
            f"Tensor {quoted(name)}: datatype {quoted(tensor.datatype)} is not accepted; send numbers as one of "
            f"{accepted}.",
            name,
        )
    shape = tensor.shape
    if not isinstance(shape, list) or not all(isinstance(size, int) and size >= 0 for size in shape):
        raise tensor_error(f"Tensor {quoted(name)}: shape must be a list of sizes, such as [1, 8].", name)
    count = math.prod(shape)
    if count > max_elements:
        raise tensor_error(
            f"Tensor {quoted(name)} has {count} elements; at most {max_elements} are accepted.",
            name,
            elements=count,
            max_elements=max_elements,
        )
    data = tensor.data
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) != count * dtype.itemsize:
            raise tensor_error(
                f"Tensor {quoted(name)}: {len(data)} bytes of data for shape {shape} of {tensor.datatype}, which "
                f"takes {count * dtype.itemsize}.",
                name,
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if isinstance(data, np.ndarray):
        values = data
    else:
        if not isinstance(data, list):
            raise tensor_error(f"Tensor {quoted(name)}: data must be a list of numbers.", name)
        try:
            values = np.array(data)
        except ValueError as exc:
            raise tensor_error(f"Tensor {quoted(name)}: data is not a list of numbers ({exc}).", name) from exc
        if values.dtype.kind not in "iuf" and values.size:
            raise tensor_error(f"Tensor {quoted(name)}: data holds {_first_non_number(data)}, not a number.", name)
    if values.size != count:
        raise tensor_error(
            f"Tensor {quoted(name)}: {values.size} elements of data for shape {shape}, which holds {count}.",
            name,
        )
    return values.reshape(shape)


def feature_matrix(tensors: Sequence[InputTensor], feature_names: Sequence[str], *, max_rows: int) -> np.ndarray:
    """The C-ordered float32 matrix of ``feature_names`` the ``tensors`` give (see the module docstring).

    Raises:
        TableError: ``invalid_tensor`` naming the tensor at fault, ``missing_columns`` naming the features no tensor
            gives, ``bad_cell`` naming the tensor and the element that is not a finite float32.
    """
    if not tensors:
        raise TableError("Send at least one input tensor.", code="invalid_tensor")
    width = len(feature_names)
    by_name = {tensor.name: tensor for tensor in tensors}
    named = [name for name in feature_names if name in by_name]
    if len(tensors) == 1 and not named:
        return _matrix_tensor(tensors[0], feature_names, max_rows)
    missing = [name for name in feature_names if name not in by_name]
    if missing:
        raise TableError(
            f"Missing input tensors for the features {', '.join(map(repr, missing))}: send one tensor per feature, "
            f"named as the column, or one [N, {width}] tensor of the features in the order "
            f"{', '.join(feature_names)}.",
            code="missing_columns",
            extra={"missing": missing, "features": list(feature_names)},
        )
    X: np.ndarray | None = None
    for j, name in enumerate(feature_names):
        tensor = by_name[name]
        values = tensor_values(tensor, max_elements=max_rows)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise tensor_error(
                f"Tensor {quoted(name)}: shape {tensor.shape}; a feature's tensor has shape [N] (or [N, 1]).", name
            )
        if X is None:
            X = np.empty((len(values), width), dtype=np.float32)
        elif len(values) != len(X):
            raise tensor_error(
                f"Tensor {quoted(name)} has {len(values)} rows, {quoted(feature_names[0])} has {len(X)}.",
                name,
            )
        with np.errstate(over="ignore", invalid="ignore"):
            X[:, j] = values
    assert X is not None
    _check_finite(X, lambda row, j: (feature_names[j], row))
    return X


def _matrix_tensor(tensor: InputTensor, feature_names: Sequence[str], max_rows: int) -> np.ndarray:
    width = len(feature_names)
    name = tensor.name
    if len(tensor.shape) != 2 or tensor.shape[1] != width:
        raise tensor_error(
            f"Tensor {quoted(name)}: shape {tensor.shape}; give one [N, {width}] tensor of the features in the "
            f"order {', '.join(feature_names)}, or one [N] tensor per feature named as the column.",
            name,
            features=list(feature_names),
        )
    values = tensor_values(tensor, max_elements=max_rows * width)
    with np.errstate(over="ignore", invalid="ignore"):
        X = np.ascontiguousarray(values, dtype=np.float32)
    _check_finite(X, lambda row, j: (name, row, j))
    return X


def _check_finite(X: np.ndarray, where) -> None:
    """Refuse a value that is not finite in float32 (a float64 beyond float32's range became infinite)."""
    if X.size and not np.isfinite(X).all():
        row, j = (int(index) for index in np.argwhere(~np.isfinite(X))[0])
        located = where(row, j)
        if len(located) == 2:
            name, element = located[0], [row]
        else:
            name, element = located[0], [row, j]
        raise TableError(
            f"Tensor {quoted(name)}, element {element}: not a finite number (float32).",
            code="bad_cell",
            extra={"tensor": name, "element": element},
        )


def _first_non_number(data: list) -> str:
    """The first element of a (nested) list that is no JSON number, quoted."""
    pending = [iter(data)]
    while pending:
        for value in pending[-1]:
            if isinstance(value, list):
                pending.append(iter(value))
                break
            if isinstance(value, bool) or not isinstance(value, int | float):
                return quoted(value)
        else:
            pending.pop()
    return "a value that is no number"


def output_tensors(values: np.ndarray, lower: np.ndarray | None, upper: np.ndarray | None) -> list[OutputTensor]:
    """``predictions`` and, with an interval, ``lower`` and ``upper``: each ``[N]``."""
    outputs = [OutputTensor(PREDICTIONS, np.asarray(values, dtype=np.float64))]
    if lower is not None and upper is not None:
        outputs.append(OutputTensor(LOWER, np.asarray(lower, dtype=np.float64)))
        outputs.append(OutputTensor(UPPER, np.asarray(upper, dtype=np.float64)))
    return outputs
