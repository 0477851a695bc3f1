"""A fitted forest's trees packed for the compiled walk (``forest_walk.c``), which the sklearn engine runs instead
of scikit-learn's own when the library is built (``make install``, ``pip install``). Pure numpy and ctypes; no Django.

The sums are scikit-learn's to the bit: each row adds its trees' leaf values in the trees' order, in float64, and
a float32 feature is at most a threshold exactly when it is at most that threshold rounded down to float32.
Measured with bench/engines.py: about twice scikit-learn's rows per second per thread on deep trees.
"""

import ctypes
import logging
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Built by setup.py as the extension ``inference._forest_walk``, hence the interpreter's extension suffix.
LIBRARY = Path(__file__).with_name("_forest_walk" + sysconfig.get_config_var("EXT_SUFFIX"))
NODE = np.dtype([("feature", "<i4"), ("threshold", "<f4"), ("child", "<i4"), ("unused", "<i4")])
# Below this many rows the walk keeps the GIL (~7 µs a row on 100 full-depth trees). Releasing it lets another
# thread in, and taking it back waits until that thread lets go: in a server's busy threads, ~10x a 1-row walk.
HOLD_GIL_BELOW_ROWS = 64


@dataclass(frozen=True)
class Walk:
    """The built library, loaded twice: ``releasing`` lets other threads run during a call, ``holding`` does not."""

    releasing: ctypes.CDLL
    holding: ctypes.PyDLL

    def functions(self, rows: int):
        return self.holding if rows < HOLD_GIL_BELOW_ROWS else self.releasing


_library: Walk | None = None
_library_checked = False


def walk_library() -> Walk | None:
    """The compiled walk, or ``None`` where it was not built (scikit-learn's walk serves then)."""
    global _library, _library_checked
    if not _library_checked:
        _library_checked = True
        try:
            _library = Walk(_declared(ctypes.CDLL(str(LIBRARY))), _declared(ctypes.PyDLL(str(LIBRARY))))
        except OSError as exc:
            logger.info("The compiled forest walk is not built (%s); scikit-learn's walk serves", exc)
    return _library


def _built_walk() -> Walk:
    walk = walk_library()
    # ``compile_forest`` makes a ``CompiledForest`` only where the library loaded.
    assert walk is not None
    return walk


def _declared(library):
    pointer, count = ctypes.c_void_p, ctypes.c_int64
    library.forest_walk.argtypes = [pointer, pointer, pointer, count, pointer, count, count, pointer]
    library.forest_walk_moments.argtypes = [*library.forest_walk.argtypes, pointer, pointer, pointer]
    library.forest_walk.restype = library.forest_walk_moments.restype = None
    return library


@dataclass
class CompiledForest:
    nodes: np.ndarray  # NODE, every tree's nodes, a tree after another
    values: np.ndarray  # float64 per node: a leaf's value
    roots: np.ndarray  # int64 per tree: its root's index in ``nodes``
    n_features: int

    def __post_init__(self):
        # The forest's arguments, once: reading an array's address costs ~2 µs, a tenth of a 1-row walk.
        self._forest = (self.nodes.ctypes.data, self.values.ctypes.data, self.roots.ctypes.data, len(self.roots))

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def sum_of_trees(self, X: np.ndarray) -> np.ndarray:
        """Per row of ``X`` (float32, C order, ``n_features`` columns), the sum of the trees' predictions."""
        X = self._checked(X)
        out = np.zeros(len(X), dtype=np.float64)
        _built_walk().functions(len(X)).forest_walk(*self._forest, X.ctypes.data, len(X), X.shape[1], out.ctypes.data)
        return out

    def tree_moments(self, X: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """``inference.forest.tree_moments`` of all the trees, to the bit: count, sum, and the sum of squared
        deviations of the trees' predictions from their mean, per row."""
        X = self._checked(X)
        total, reference, shifted, shifted_sq = (np.zeros(len(X), dtype=np.float64) for _ in range(4))
        _built_walk().functions(len(X)).forest_walk_moments(
            *self._forest,
            X.ctypes.data,
            len(X),
            X.shape[1],
            total.ctypes.data,
            reference.ctypes.data,
            shifted.ctypes.data,
            shifted_sq.ctypes.data,
        )
        return self.n_trees, total, shifted_sq - shifted * shifted / max(self.n_trees, 1)

    def _checked(self, X: np.ndarray) -> np.ndarray:
        # The C side reads the buffer as given: anything else would read out of bounds.
        if X.dtype != np.float32 or not X.flags.c_contiguous or X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a C-ordered float32 matrix of {self.n_features} columns")
        return X


def compile_forest(trees: list, n_features: int) -> CompiledForest | None:
    """Pack fitted single-output ``tree_`` objects, or ``None`` when the walk is not built or cannot serve them.

    Nodes are renumbered breadth-first within each tree, so that an internal node's children are adjacent.
    """
    if walk_library() is None or not trees:
        return None
    sizes = np.array([tree.node_count for tree in trees], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    left = np.concatenate([tree.children_left + offset for tree, offset in zip(trees, offsets, strict=True)])
    right = np.concatenate([tree.children_right + offset for tree, offset in zip(trees, offsets, strict=True)])
    is_leaf = np.concatenate([tree.children_left < 0 for tree in trees])
    feature = np.concatenate([tree.feature for tree in trees])
    threshold = np.concatenate([tree.threshold for tree in trees])
    value = np.concatenate([tree.value[:, 0, 0] for tree in trees]).astype(np.float64)

    # Level by level across all trees, then grouped by tree (a stable sort keeps each pair of children together).
    levels, frontier = [offsets], offsets
    while frontier.size:
        internal = frontier[~is_leaf[frontier]]
        frontier = np.column_stack([left[internal], right[internal]]).ravel()
        levels.append(frontier)
    order = np.concatenate(levels)
    tree_of = np.repeat(np.arange(len(trees)), sizes)
    order = order[np.argsort(tree_of[order], kind="stable")]
    position = np.empty_like(order)
    position[order] = np.arange(len(order))

    nodes = np.zeros(len(order), dtype=NODE)
    leaf = is_leaf[order]
    nodes["feature"] = np.where(leaf, 0, feature[order])
    nodes["threshold"] = np.where(leaf, np.nan, _round_down_to_float32(threshold[order]))
    nodes["child"] = np.where(leaf, np.arange(len(order)) - 1, position[np.where(leaf, 0, left[order])])
    return CompiledForest(
        nodes=nodes, values=value[order], roots=position[offsets].astype(np.int64), n_features=n_features
    )


def _round_down_to_float32(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 at most each threshold: for a float32 ``x``, ``x <= t`` exactly when ``x <= it``."""
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded
