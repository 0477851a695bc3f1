"""A ``calendar=true`` version over the Open Inference Protocol: its timestamp tensor, and the feature matrix with the
calendar features derived from it as ``/predict`` derives them. Pure: no Django.

Such a version's signature ends with the 8 calendar features (``core.calendar``), which the model derives from its
timestamp column. A request gives the file's own features as any other (one tensor per feature, or one ``[N, F]``
matrix of them in the signature's order) plus one tensor named as the timestamp column: datatype ``BYTES``, shape
``[N]`` (or ``[N, 1]``), each element a date or time as text, read by ``core.calendar.parse_timestamps`` as
``/predict`` reads the column. The calendar features themselves are not accepted from the client: they would be
values the model never derived, and a client that computes them differently would get answers ``/predict`` never
gives for the same rows.

``BYTES`` data comes as JSON (a list of strings), as the binary tensor data extension's bytes or gRPC's
``raw_input_contents`` (each element a 4-byte little-endian length, then its bytes: Triton's encoding), or as gRPC's
``bytes_contents`` (a list of bytes).
"""

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.calendar import CALENDAR_FEATURES, calendar_matrix, parse_timestamps
from core.errors import quoted
from core.tabular import TableError

from .tensors import InputTensor, feature_matrix, tensor_error

BYTES = "BYTES"
_LENGTH = struct.Struct("<I")


def metadata_inputs(feature_names: Sequence[str], calendar_from: str | None) -> list[dict]:
    """The inputs a version's metadata lists: a ``[-1]`` FP32 tensor per feature the client sends, and for a
    calendar version the timestamp tensor (BYTES) in place of the derived features."""
    if calendar_from is None:
        return [{"name": feature, "datatype": "FP32", "shape": [-1]} for feature in feature_names]
    own = [feature for feature in feature_names if feature not in CALENDAR_FEATURES]
    return [
        *({"name": feature, "datatype": "FP32", "shape": [-1]} for feature in own),
        {"name": calendar_from, "datatype": BYTES, "shape": [-1]},
    ]


def calendar_feature_matrix(
    tensors: Sequence[InputTensor], feature_names: Sequence[str], *, calendar_from: str, max_rows: int
) -> np.ndarray:
    """The C-ordered float32 matrix of ``feature_names``: the own features from their tensors, the calendar features
    derived from the ``calendar_from`` tensor's timestamps (see the module docstring).

    Raises:
        TableError: ``calendar_features_sent`` for a tensor named as a calendar feature (or a matrix as wide as the
            signature), ``missing_columns`` naming the timestamp tensor (or own features) no tensor gives,
            ``invalid_tensor`` naming the tensor at fault, ``bad_timestamp`` naming the tensor and the element that
            is no date or time, ``bad_cell`` as ``feature_matrix``.
    """
    if not tensors:
        raise TableError("Send at least one input tensor.", code="invalid_tensor")
    derived = [name for name in feature_names if name in CALENDAR_FEATURES]
    own = [name for name in feature_names if name not in CALENDAR_FEATURES]
    by_name = {tensor.name: tensor for tensor in tensors}
    sent = [name for name in CALENDAR_FEATURES if name in by_name]
    others = [tensor for tensor in tensors if tensor.name != calendar_from]
    whole = len(others) == 1 and not any(name in by_name for name in own) and _width(others[0]) == len(feature_names)
    if sent or (whole and derived):
        raise TableError(
            f"The calendar features ({', '.join(derived)}) are derived by the model from the timestamp: send the "
            f"tensor {quoted(calendar_from)} (datatype BYTES, shape [N], dates or times as text such as "
            f"'2024-03-01T15:00:00Z') besides the features {', '.join(own) or '(none)'}, not the calendar features.",
            code="calendar_features_sent",
            extra={"tensors": sent or [others[0].name], "timestamp": calendar_from, "features": own},
        )
    stamp = by_name.get(calendar_from)
    matrix = len(others) == 1 and others[0].name not in own
    missing = [] if matrix else [name for name in own if name not in by_name]
    if stamp is None:
        missing.append(calendar_from)
    if missing:
        raise TableError(
            f"Missing input tensors for {', '.join(map(repr, missing))}: this version derives its calendar features "
            f"from the timestamp, so send the tensor {quoted(calendar_from)} (datatype BYTES, shape [N], dates or "
            f"times as text) besides the features ({', '.join(own) or 'none'}): one tensor each, or one "
            f"[N, {len(own)}] matrix.",
            code="missing_columns",
            extra={"missing": missing, "features": [*own, calendar_from]},
        )
    assert stamp is not None
    moments = calendar_matrix(_parsed(stamp, max_rows=max_rows))
    if own:
        X_own = feature_matrix(others, own, max_rows=max_rows)
        if len(X_own) != len(moments):
            raise tensor_error(
                f"Tensor {quoted(calendar_from)} has {len(moments)} timestamps for {len(X_own)} rows of features.",
                calendar_from,
            )
    else:
        X_own = np.empty((len(moments), 0), dtype=np.float32)
    X = np.empty((len(moments), len(feature_names)), dtype=np.float32)
    X[:, : len(own)] = X_own
    position_of = {name: index for index, name in enumerate(CALENDAR_FEATURES)}
    for offset, name in enumerate(derived):
        X[:, len(own) + offset] = moments[:, position_of[name]]
    return X


def _width(tensor: InputTensor) -> int | None:
    shape = tensor.shape
    return shape[1] if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) else None


def _parsed(tensor: InputTensor, *, max_rows: int):
    """The tensor's timestamps, parsed as ``/predict`` parses the column (UTC)."""
    texts = bytes_elements(tensor, max_elements=max_rows)
    try:
        return parse_timestamps(texts, column=tensor.name)
    except TableError as exc:
        if exc.code != "bad_timestamp":
            raise
        row = int(exc.extra["row"]) - 1
        raise TableError(
            f"Tensor {quoted(tensor.name)}, element [{row}]: {quoted(texts[row])} is not a date or time.",
            code="bad_timestamp",
            extra={"tensor": tensor.name, "element": [row]},
        ) from exc


def bytes_elements(tensor: InputTensor, *, max_elements: int) -> list[str]:
    """A ``BYTES`` tensor of shape ``[N]`` or ``[N, 1]`` as its ``N`` texts.

    Raises:
        TableError: ``invalid_tensor`` naming the tensor (another datatype, a bad shape, more than ``max_elements``
            elements, data that does not fill the shape), ``bad_timestamp`` naming the element that is no text.
    """
    name = tensor.name
    if tensor.datatype != BYTES:
        raise tensor_error(
            f"Tensor {quoted(name)}: datatype {quoted(tensor.datatype)}; the timestamp is sent as BYTES, dates or "
            "times as text such as '2024-03-01T15:00:00Z'.",
            name,
        )
    shape = tensor.shape
    if (
        not isinstance(shape, list)
        or not all(isinstance(size, int) and size >= 0 for size in shape)
        or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
    ):
        raise tensor_error(
            f"Tensor {quoted(name)}: shape {shape}; the timestamp tensor has shape [N] (or [N, 1]).", name
        )
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
        elements: list[Any] = _length_prefixed(bytes(data), name)
    elif isinstance(data, np.ndarray):
        elements = data.ravel().tolist()
    elif isinstance(data, list):
        elements = _flattened(data)
    else:
        raise tensor_error(f"Tensor {quoted(name)}: data must be a list of strings.", name)
    if len(elements) != count:
        raise tensor_error(
            f"Tensor {quoted(name)}: {len(elements)} elements of data for shape {shape}, which holds {count}.", name
        )
    texts = []
    for index, element in enumerate(elements):
        if isinstance(element, bytes):
            try:
                element = element.decode("utf-8")
            except UnicodeDecodeError:
                element = None
        if not isinstance(element, str):
            raise TableError(
                f"Tensor {quoted(name)}, element [{index}]: {quoted(element)} is not a date or time as text.",
                code="bad_timestamp",
                extra={"tensor": name, "element": [index]},
            )
        texts.append(element)
    return texts


def _length_prefixed(data: bytes, name: str) -> list[bytes]:
    """Triton's serialized BYTES: each element a 4-byte little-endian length, then that many bytes."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + _LENGTH.size > len(data):
            raise tensor_error(
                f"Tensor {quoted(name)}, element [{len(elements)}]: {len(data) - offset} bytes where a 4-byte "
                "length should start it (BYTES data is each element's length, little-endian, then its bytes).",
                name,
            )
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + size > len(data):
            raise tensor_error(
                f"Tensor {quoted(name)}, element [{len(elements)}]: a length of {size} bytes runs past the data's "
                f"end ({len(data) - offset} bytes left).",
                name,
            )
        elements.append(data[offset : offset + size])
        offset += size
    return elements


def _flattened(data: list) -> list[Any]:
    """A flat or ``[N, 1]``-nested JSON list's elements, in order."""
    return [item for element in data for item in (element if isinstance(element, list) else [element])]
