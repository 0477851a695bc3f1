"""One registered version in memory: its engines (``inference.engines``), which one serves each format, and the
loading of its pickle (``loading.PickleLoad``).

The ONNX engine is there from the start. The pickle's engines come once it is loaded: scikit-learn's, and where the
compiled walk is built the same forest packed for it, which then serves the ``sklearn`` format.
"""

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import ApplicationError
from core.intervals import Calibration

from ..engines import Engine, ForestEngine, OnnxEngine, SklearnEngine
from ..forest import CategoricalSplits

if TYPE_CHECKING:
    from .loading import PickleLoad


@dataclass
class LoadedVersion:
    name: str
    version: int
    feature_names: list[str]
    parity: dict[str, float]
    workdir: Path
    onnx: OnnxEngine
    pickle: "PickleLoad"
    # The prediction intervals' calibration; ``None`` with the reason in ``calibration_problem``.
    calibration: Calibration | None = None
    calibration_problem: str = ""
    # The calibration file's size, counted with the engines' artifacts.
    calibration_bytes: int = 0
    # The timestamp column a ``calendar=true`` version derives its calendar features from (``core.calendar``).
    calendar_from: str | None = None

    @property
    def nbytes(self) -> int:
        """What the cache's byte bound counts: the artifacts of the engines loaded, and the calibration file."""
        return self.calibration_bytes + sum(engine.nbytes for engine in (self.onnx, *self.pickle.engines()))

    @property
    def formats_in_memory(self) -> list[str]:
        return [
            engine_format
            for engine_format, in_memory in (("onnx", self.onnx.in_memory), ("sklearn", self.pickle.loaded))
            if in_memory
        ]

    def parity_within(self, max_rel_diff: float) -> bool:
        """Whether training recorded ONNX predictions within ``max_rel_diff`` of sklearn's."""
        return self.parity.get("onnx_max_rel_diff", math.inf) <= max_rel_diff

    def engine(self, model_format: str) -> Engine:
        """The engine that serves ``model_format`` (``onnx`` or ``sklearn``), loading the pickle if it must.

        ``sklearn`` is served by the compiled walk where the forest is packed for it, else by scikit-learn's.
        """
        if model_format == "onnx":
            return self.onnx
        sklearn = self.pickle.load()
        return self.pickle.compiled or sklearn

    def forest(self) -> ForestEngine:
        """The engine that serves ``sklearn`` for a forest, for the spread of its trees' predictions."""
        sklearn = self._sklearn_forest()
        return self.pickle.compiled or sklearn

    def contributions(self, X: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
        """The model's base value and each feature's contribution per row (``SklearnEngine.contributions``): a
        random forest's or extra trees', or boosting's."""
        sklearn = self.pickle.load()
        if not sklearn.explainable:
            raise self._unservable(
                f"Version {self.version} of {self.name!r} is a {type(sklearn.model).__name__}, not a single-output"
                " random forest, extra-trees or gradient boosting model: it has no tree paths to explain with."
            )
        try:
            return sklearn.contributions(X, threads)
        except CategoricalSplits:
            raise self._unservable(
                f"Version {self.version} of {self.name!r} splits on categorical features: its tree paths have no"
                " thresholds to explain with."
            ) from None

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _sklearn_forest(self) -> SklearnEngine:
        sklearn = self.pickle.load()
        if sklearn.trees is None:
            raise self._unservable(
                f"Version {self.version} of {self.name!r} is a {type(sklearn.model).__name__}, not a single-output"
                " random forest or extra-trees model: it has no spread of trees to scale intervals by (its prediction"
                " intervals use the absolute method)."
            )
        return sklearn

    def _unservable(self, message: str) -> ApplicationError:
        return ApplicationError(
            message, code="unservable_model", extra={"model_name": self.name, "version": self.version}
        )
