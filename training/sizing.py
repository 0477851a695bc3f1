"""How big a forest may grow: bounds derived from a budget when the request leaves them open, and the ceilings
no request may pass. No Django.

A fully grown tree has about one leaf per distinct training row, so with no bound the ONNX file, the pickle, the
worker's memory and the conversion time all grow linearly with the rows (10k rows: 39 MB ONNX, 1.1 GB RSS;
~500k rows pass ONNX's 2 GB protobuf limit). A budget of nodes across the forest caps each tree's leaves
(``max_leaf_nodes``), which makes the model's size independent of the rows; on big data each tree also fits on a
bootstrap subsample (``max_samples``), which bounds the fit time.
"""

from dataclasses import dataclass, replace
from typing import Any

from core.errors import ApplicationError

# Measured with skl2onnx 1.20 / sklearn 1.9 on 8 features (training/sizing measurements in README): bytes per
# tree node of the serialized ONNX model, of the pickle, and of the worker's peak memory while one forest is
# converted (skl2onnx builds Python lists of every node attribute before serializing).
ONNX_BYTES_PER_NODE = 40
PICKLE_BYTES_PER_NODE = 73
FIT_BYTES_PER_NODE = 80
CONVERSION_BYTES_PER_NODE = 600
# The worker's own footprint (Django, sklearn, onnx, MLflow client) before any data is read.
BASE_MEMORY_BYTES = 600 * 2**20
# Bytes per cell while the CSV is parsed and the float32 matrix made from it.
DATA_BYTES_PER_CELL = 24
# protobuf refuses to serialize a message of 2 GiB or more.
ONNX_LIMIT_BYTES = 2**31 - 1


class ModelTooLarge(ApplicationError):
    code = "model_too_large"


@dataclass(frozen=True)
class SizeBudget:
    """``max_nodes``: tree nodes across the served forest when the request gives no ``max_leaf_nodes``;
    ``max_samples``: rows each tree draws when the training window is larger (and the request gives none);
    ``memory_bytes``: the estimated worker memory no job may exceed."""

    max_nodes: int = 2_000_000
    max_samples: int = 100_000
    memory_bytes: int = 4 * 2**30


@dataclass(frozen=True)
class SizeEstimate:
    nodes: int
    onnx_bytes: int
    pickle_bytes: int
    memory_bytes: int

    def as_dict(self) -> dict[str, int]:
        return {
            "nodes": self.nodes,
            "onnx_bytes": self.onnx_bytes,
            "pickle_bytes": self.pickle_bytes,
            "memory_bytes": self.memory_bytes,
        }


def leaves_for_budget(*, max_nodes: int, n_estimators: int) -> int:
    """Leaves per tree that keep ``n_estimators`` trees within ``max_nodes`` nodes (a tree of L leaves has 2L-1)."""
    return max(2, (max_nodes // n_estimators + 1) // 2)


def bounded_params(params, *, budget: SizeBudget, n_samples: int | None = None):
    """``params`` with the size bounds the request left open filled in from ``budget``.

    ``max_leaf_nodes`` is always bounded (the budget's share per tree unless given); ``max_samples`` once the
    ``n_samples`` training rows exceed the budget's.
    """
    changes: dict[str, Any] = {}
    if params.max_leaf_nodes is None:
        changes["max_leaf_nodes"] = leaves_for_budget(max_nodes=budget.max_nodes, n_estimators=params.n_estimators)
    if params.max_samples is None and n_samples is not None and n_samples > budget.max_samples:
        changes["max_samples"] = budget.max_samples
    return replace(params, **changes)


def size_estimate(params, *, n_samples: int | None = None, n_features: int = 8) -> SizeEstimate:
    """An upper estimate of the forest's size and the worker's peak memory for ``params`` (already bounded).

    Without ``n_samples`` (before the file is read) the data's share of the memory is left out.
    """
    leaves = params.max_leaf_nodes or 2**62
    if params.max_depth is not None:
        leaves = min(leaves, 2**params.max_depth)
    per_tree_rows = params.max_samples or n_samples
    if per_tree_rows is not None:
        # A leaf holds at least one row.
        leaves = min(leaves, per_tree_rows)
    nodes = params.n_estimators * (2 * leaves - 1)
    data = 0 if n_samples is None else n_samples * (n_features + 2) * DATA_BYTES_PER_CELL
    # The served forest and its twin are both held while calibrating; one is converted afterwards.
    memory = BASE_MEMORY_BYTES + data + 2 * nodes * FIT_BYTES_PER_NODE + nodes * CONVERSION_BYTES_PER_NODE
    return SizeEstimate(
        nodes=nodes,
        onnx_bytes=nodes * ONNX_BYTES_PER_NODE,
        pickle_bytes=nodes * PICKLE_BYTES_PER_NODE,
        memory_bytes=memory,
    )


def size_check(params, *, budget: SizeBudget, n_samples: int | None = None, n_features: int = 8) -> SizeEstimate:
    """The estimate for ``params``, or ``ModelTooLarge`` naming the ceiling it passes (ONNX's 2 GB, the budget)."""
    estimate = size_estimate(params, n_samples=n_samples, n_features=n_features)
    extra = {"estimate": estimate.as_dict(), "params": params.as_dict()}
    if estimate.onnx_bytes > ONNX_LIMIT_BYTES:
        raise ModelTooLarge(
            f"A forest of {params.n_estimators} trees with up to {estimate.nodes} nodes would make an ONNX file of "
            f"~{estimate.onnx_bytes / 2**30:.1f} GiB, over ONNX's 2 GiB limit: lower n_estimators, max_leaf_nodes, "
            "max_depth or max_samples.",
            extra=extra | {"limit_bytes": ONNX_LIMIT_BYTES},
        )
    if estimate.memory_bytes > budget.memory_bytes:
        raise ModelTooLarge(
            f"Training a forest of {params.n_estimators} trees with up to {estimate.nodes} nodes would take "
            f"~{estimate.memory_bytes / 2**30:.1f} GiB of worker memory, over the budget of "
            f"{budget.memory_bytes / 2**30:.1f} GiB: lower n_estimators, max_leaf_nodes, max_depth or max_samples.",
            extra=extra | {"limit_bytes": budget.memory_bytes},
        )
    return estimate
