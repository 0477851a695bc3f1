"""The engines a loaded version predicts with, one per way of running its artifacts. Pure: numpy, onnxruntime,
scikit-learn and the compiled walk; no Django.

Every engine answers ``predict(X, threads)``: one float per row of the float32 matrix ``X``, a large batch split
across ``threads``. It names the format it serves (``format``: what answers and metrics call the engine that ran)
and the bytes it stands for (``nbytes``: what the model cache's byte bound counts). An engine over a forest's trees
also answers ``moments``: the predictions and the spread of the trees' predictions, which scaled prediction
intervals need.

- ``OnnxEngine``: the ONNX file in onnxruntime (float32 arithmetic, ~1e-5 from scikit-learn).
- ``SklearnEngine``: the unpickled scikit-learn model, walked by scikit-learn; also each feature's contribution.
- ``CompiledForestEngine``: the same forest packed for the compiled walk, scikit-learn's predictions to the bit.
"""

from typing import Protocol

import numpy as np

from .compiled import CompiledForestEngine
from .onnx import OnnxEngine
from .sklearn import SklearnEngine


class Engine(Protocol):
    format: str
    nbytes: int

    def predict(self, X: np.ndarray, threads: int) -> np.ndarray: ...


class ForestEngine(Engine, Protocol):
    def moments(self, X: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]: ...


__all__ = ["CompiledForestEngine", "Engine", "ForestEngine", "OnnxEngine", "SklearnEngine"]
