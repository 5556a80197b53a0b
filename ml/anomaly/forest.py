"""Isolation forests as flat arrays: stored as JSON, evaluated by compiled kernels.

Trees are grown by ``coniferest`` (training only, :mod:`ml.anomaly.train`); serving needs
numpy and numba and nothing else.  A forest is every tree's nodes concatenated: node
``i`` splits on ``feature[i]`` at ``threshold[i]`` (``x <= threshold`` goes left) or is a
leaf (``feature[i] == -1``) holding ``path[i]``, its depth plus the expected depth of an
unbuilt subtree over the training points that reached it (Liu et al. 2008), so a
sample's path length is the sum of its leaves' ``path`` over the trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np


@numba.njit(cache=True)
def _leaves(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
            right: np.ndarray, roots: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n, trees = x.shape[0], roots.shape[0]
    out = np.empty((n, trees), dtype=np.int64)
    for i in range(n):
        for t in range(trees):
            node = roots[t]
            while feature[node] >= 0:
                node = left[node] if x[i, feature[node]] <= threshold[node] else right[node]
            out[i, t] = node
    return out


@numba.njit(cache=True)
def _paths_and_gains(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
                     left: np.ndarray, right: np.ndarray, roots: np.ndarray,
                     path: np.ndarray, expected: np.ndarray, n_features: int
                     ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    # one traversal gives both the mean path length and, per feature, how much the
    # sample's splits isolated it: c(n_parent) - 1 - c(n_child), the rest of the path
    # shortened beyond one level of an average split, counted when positive (an
    # ordinary point gains little anywhere)
    n, trees = x.shape[0], roots.shape[0]
    lengths = np.zeros(n)
    gains = np.zeros((n, n_features))
    for i in range(n):
        total_path = 0.0
        for t in range(trees):
            node = roots[t]
            while feature[node] >= 0:
                child = left[node] if x[i, feature[node]] <= threshold[node] else right[node]
                gain = expected[node] - 1.0 - expected[child]
                if gain > 0:
                    gains[i, feature[node]] += gain
                node = child
            total_path += path[node]
        lengths[i] = total_path / trees
    return lengths, gains


@dataclass(frozen=True)
class Forest:
    """An isolation forest's trees as flat node arrays (see the module docstring)."""

    feature: np.ndarray  #: int64, -1 at leaves
    threshold: np.ndarray  #: float64
    left: np.ndarray  #: int64 node index, -1 at leaves
    right: np.ndarray  #: int64 node index, -1 at leaves
    path: np.ndarray  #: float64 path length at leaves, 0 elsewhere
    #: float64 c(n) of the training points that reached each node (isolation gains)
    expected: np.ndarray
    roots: np.ndarray  #: int64, one per tree
    #: c(n), the mean path length of an unsuccessful search over the n points each tree
    #: was grown on (Liu et al. 2008, eq. 1), as the training library computed it
    normaliser: float
    n_features: int

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def leaf_nodes(self) -> np.ndarray:
        """Node indices of the leaves, in node order (the index space of AAD weights)."""
        return np.flatnonzero(self.feature < 0)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """(n, n_trees) node index of the leaf each sample reaches in each tree."""
        return _leaves(np.ascontiguousarray(x, dtype=np.float64), self.feature,
                       self.threshold, self.left, self.right, self.roots)

    def path_length(self, x: np.ndarray) -> np.ndarray:
        """Mean path length over the trees, per sample (splits; short = isolated)."""
        return np.asarray(self.path[self.leaves(x)].mean(axis=1))

    def score(self, x: np.ndarray) -> np.ndarray:
        """Liu et al.'s anomaly score 2^(-E[h] / c(n)) in (0, 1]: 0.5 is an average
        point, near 1 is isolated at once."""
        return np.asarray(2.0 ** (-self.path_length(x) / self.normaliser))

    def score_and_gains(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The scores (as :meth:`score`) and, per sample and feature, the isolation gain
        of its splits on that feature (summed over the trees; unnormalised)."""
        lengths, gains = _paths_and_gains(
            np.ascontiguousarray(x, dtype=np.float64), self.feature, self.threshold,
            self.left, self.right, self.roots, self.path, self.expected, self.n_features)
        return np.asarray(2.0 ** (-lengths / self.normaliser)), gains

    def isolating_features(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features) share of each feature in isolating each sample (rows sum to 1;
        all 0 for a sample no split isolated)."""
        gains = self.score_and_gains(x)[1]
        total = gains.sum(axis=1, keepdims=True)
        return np.divide(gains, total, out=np.zeros_like(gains), where=total > 0)

    # -- serialisation --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"format": "isolation-forest-nodes/1", "normaliser": self.normaliser,
                "n_features": self.n_features, "roots": self.roots.tolist(),
                "feature": self.feature.tolist(), "threshold": self.threshold.tolist(),
                "left": self.left.tolist(), "right": self.right.tolist(),
                "path": self.path.tolist(), "expected": self.expected.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Forest:
        if data.get("format") != "isolation-forest-nodes/1":
            raise ValueError(f"not a stored isolation forest: format {data.get('format')!r}")
        forest = cls(feature=np.asarray(data["feature"], dtype=np.int64),
                     threshold=np.asarray(data["threshold"], dtype=np.float64),
                     left=np.asarray(data["left"], dtype=np.int64),
                     right=np.asarray(data["right"], dtype=np.int64),
                     path=np.asarray(data["path"], dtype=np.float64),
                     expected=np.asarray(data["expected"], dtype=np.float64),
                     roots=np.asarray(data["roots"], dtype=np.int64),
                     normaliser=float(data["normaliser"]),
                     n_features=int(data["n_features"]))
        forest.validate()
        return forest

    def validate(self) -> None:
        """Refuse arrays that would send the kernels out of bounds or into a loop."""
        n = self.feature.shape[0]
        arrays = (self.threshold, self.left, self.right, self.path, self.expected)
        if any(a.shape != (n,) for a in arrays):
            raise ValueError("forest arrays differ in length")
        inner = self.feature >= 0
        if np.any(self.feature >= self.n_features):
            raise ValueError("a split names a feature beyond n_features")
        children = np.concatenate([self.left[inner], self.right[inner]])
        owners = np.concatenate([np.flatnonzero(inner)] * 2)
        if children.size and (children.min() < 0 or children.max() >= n
                              or np.any(children <= owners)):
            raise ValueError("a split's child is out of range or not after its parent")
        if not self.normaliser > 0:
            raise ValueError("the path-length normaliser must be positive")
        if self.roots.size == 0 or self.roots.min() < 0 or self.roots.max() >= n:
            raise ValueError("a tree root is out of range")


def from_coniferest(model: Any, n_features: int) -> Forest:
    """Flatten a fitted ``coniferest`` isolation forest (its trees keep the right child
    at ``left + 1`` and a leaf's path length in ``value``)."""
    from coniferest.utils import average_path_length  # training dependency only

    features, thresholds, lefts, rights, paths, expected, roots = [], [], [], [], [], [], []
    offset = 0
    for tree in model.evaluator.core_forest:
        left = np.asarray(tree.left, dtype=np.int64)
        feature = np.asarray(tree.feature, dtype=np.int64)
        value = np.asarray(tree.value, dtype=np.float64)
        leaf = left <= 0
        roots.append(offset)
        features.append(np.where(leaf, -1, feature))
        thresholds.append(np.where(leaf, 0.0, value))
        lefts.append(np.where(leaf, -1, left + offset))
        rights.append(np.where(leaf, -1, left + 1 + offset))
        paths.append(np.where(leaf, value, 0.0))
        expected.append(np.asarray(tree.node_average_path_length, dtype=np.float64))
        offset += left.shape[0]
    forest = Forest(feature=np.concatenate(features), threshold=np.concatenate(thresholds),
                    left=np.concatenate(lefts), right=np.concatenate(rights),
                    path=np.concatenate(paths), expected=np.concatenate(expected),
                    roots=np.asarray(roots, dtype=np.int64),
                    normaliser=float(average_path_length(model.evaluator.samples)),
                    n_features=n_features)
    forest.validate()
    return forest
