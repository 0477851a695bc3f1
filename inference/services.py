"""Predictions from a registered version."""

from dataclasses import dataclass

import numpy as np

from registry_mirror import gateway
from registry_mirror.tabular import feature_matrix, read_csv

from .loaders import model_cache

FORMATS = ("onnx", "sklearn")


@dataclass(frozen=True)
class Prediction:
    values: list[float]
    name: str
    version: int
    model_format: str


def prediction_create(*, model_name: str, version: str, model_format: str, csv: bytes) -> Prediction:
    """Predict one value per CSV row with ``model_name`` at ``version`` (a number, ``latest`` or an alias).

    Raises:
        NotFound: no such model or version.
        TableError: the CSV lacks the model's feature columns or holds a bad cell.
    """
    number = (
        int(version)
        if version.isdigit()
        else int(gateway.model_version_resolve(name=model_name, version=version).version)
    )
    loaded = model_cache().get(model_name, number)
    frame = read_csv(csv)
    X = feature_matrix(frame, loaded.feature_names)
    values = loaded.predict(X, model_format)
    return Prediction(
        values=np.asarray(values, dtype=np.float64).tolist(),
        name=model_name,
        version=number,
        model_format=model_format,
    )
