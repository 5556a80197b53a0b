"""The anomaly model: isolation forests per class, weighted by the classifier.

An object's raw score is ``sum_c P(c) s_c(x) / sum_c P(c)`` over the light-curve
classifier's classes c, where ``s_c`` is Liu et al.'s isolation score of a forest grown
on real objects of class c only: an object is unusual when it is unlike the objects of
the class the classifier believes it to be (ALeRCE's routing, applied to outliers, one
level finer than its top classes; the per-branch scores are the same sum within each
top class).  The forests split on each feature's rank among the training objects (its
empirical CDF), so a heavy-tailed feature (a period, an amplitude) does not make its far
tail the only place splits can isolate.  The stamp classifier's bogus probability gates
the score, ``raw * (1 - P(bogus))``, so artefacts sink instead of topping the list (SNAD:
a real/bogus cut took artefacts in its top 100 from 27 to 3).  ``score`` is the raw
score's percentile in a versioned reference distribution (1 = more unusual than every
reference object).  A missing feature sits at the median of every class, so a band that
was not observed is never what makes an object unusual.

Artefacts are JSON only (forests as node arrays, :mod:`ml.anomaly.forest`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd

from ml.anomaly.forest import Forest
from ml.lc_classifier.taxonomy import CLASSES, TOP_CLASSES, TOP_OF

#: the top-level classes, in the light-curve classifier's order
BRANCHES: tuple[str, ...] = TOP_CLASSES

#: points of the stored reference distribution (its quantiles)
REFERENCE_POINTS = 1001
#: at most this many quantiles per feature define its rank transform
RANK_POINTS = 1001
TOP_FEATURES = 3
#: smallest median-to-end distance of a rank tail, and the largest |rank| it can reach
TAIL_FLOOR, TAIL_CAP = 1e-9, 1e6


@dataclass
class AnomalyScores:
    """Scores of a batch of objects (rows in input order)."""

    score: np.ndarray  #: percentile in [0, 1] against the reference (1 = most unusual)
    raw: np.ndarray  #: gated, class-weighted isolation score in [0, 1]
    branches: dict[str, np.ndarray]  #: the same weighted score within each top class
    contributions: np.ndarray  #: (n, n_features) share of each feature, rows sum to 1
    values: np.ndarray  #: (n, n_features) the feature values scored
    features: list[str]

    def top_features(self, row: int, k: int = TOP_FEATURES) -> list[dict[str, Any]]:
        """The ``k`` features that did most to isolate object ``row``: name, its value
        (None when it was missing) and its share of the isolating splits."""
        order = np.argsort(-self.contributions[row], kind="stable")[:k]
        out = []
        for j in order:
            value = self.values[row, j]
            out.append({"name": self.features[j],
                        "value": None if not np.isfinite(value) else float(value),
                        "contribution": float(self.contributions[row, j])})
        return out


def rank_points(x: np.ndarray, points: int = RANK_POINTS) -> list[np.ndarray]:
    """Per column of a class's training matrix, its sorted finite values (or ``points``
    of their quantiles) that define the rank transform; [0] for a column with none."""
    out = []
    for j in range(x.shape[1]):
        finite = x[np.isfinite(x[:, j]), j]
        column = np.sort(finite) if finite.size else np.zeros(1)
        if column.shape[0] > points:
            column = np.quantile(column, np.linspace(0.0, 1.0, points))
        out.append(column)
    return out


@numba.njit(cache=True)
def _ranks(x: np.ndarray, values: np.ndarray, lengths: np.ndarray, floor: float,
           cap: float) -> np.ndarray:  # pragma: no cover - compiled
    n, n_features = x.shape
    out = np.empty((n, n_features))
    for j in range(n_features):
        m = lengths[j]
        column = values[j, :m]
        low, mid, high = column[0], column[m // 2], column[m - 1]
        for i in range(n):
            v = x[i, j]
            if not np.isfinite(v):
                out[i, j] = 0.5
                continue
            if v < low:
                r = -0.5 * (low - v) / max(mid - low, floor)
            elif v > high:
                r = 1.0 + 0.5 * (v - high) / max(high - mid, floor)
            else:
                below = np.searchsorted(column, v, side="left")
                at_or_below = np.searchsorted(column, v, side="right")
                r = (below + at_or_below) / (2.0 * m)
            out[i, j] = min(max(r, -cap), cap)
    return out


def pack_points(points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature rank points as one padded (n_features, longest) array and lengths."""
    lengths = np.array([p.shape[0] for p in points], dtype=np.int64)
    values = np.full((len(points), int(lengths.max(initial=1))), np.inf)
    for j, p in enumerate(points):
        values[j, :p.shape[0]] = p
    return values, lengths


def to_ranks(x: np.ndarray, points: list[np.ndarray] | tuple[np.ndarray, np.ndarray]
             ) -> np.ndarray:
    """Each value's mid-rank empirical CDF among its column's points, in [0, 1] inside
    their range and continued linearly outside it (half a unit per distance between the
    median and that end); a missing value (NaN, inf) is the median, 0.5, so a feature
    that was not measured is never what makes an object unusual.  ``points`` as
    :func:`rank_points` gives them, or packed by :func:`pack_points`."""
    values, lengths = pack_points(points) if isinstance(points, list) else points
    return _ranks(np.ascontiguousarray(x, dtype=np.float64), values, lengths,
                  TAIL_FLOOR, TAIL_CAP)


def percentile(raw: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Share of the reference below each raw score, from its sorted quantiles (monotone
    non-decreasing in ``raw``; 0 below the reference's minimum, 1 above its maximum)."""
    levels = np.linspace(0.0, 1.0, quantiles.shape[0])
    return np.asarray(np.interp(raw, quantiles, levels, left=0.0, right=1.0))


@dataclass
class AnomalyModel:
    """Per-class forests over named features, each in its class's rank space, and the
    reference distribution."""

    features: list[str]
    forests: dict[str, Forest]  #: class name -> forest (classes with enough objects)
    ranks: dict[str, list[np.ndarray]]  #: class name -> per-feature rank points
    quantiles: np.ndarray  #: REFERENCE_POINTS sorted quantiles of the reference raw scores
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.card.get("version", "0.0.0"))

    @cached_property
    def _packed(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {c: pack_points(points) for c, points in self.ranks.items()}

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The model's columns of a feature table, missing columns as NaN."""
        return features.reindex(columns=self.features).to_numpy(dtype=np.float64)

    def _weights(self, class_probabilities: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(class_probabilities, dtype=np.float64), 0.0, None)
        if p.ndim != 2 or p.shape[1] != len(CLASSES):
            raise ValueError(f"class probabilities must be (n, {len(CLASSES)}) in the "
                             f"taxonomy's order, got {p.shape}")
        columns = [CLASSES.index(c) for c in self.forests]
        w = p[:, columns]
        total = w.sum(axis=1, keepdims=True)
        # no opinion on any class the model knows: weigh its classes equally
        return np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / len(columns))

    def _evaluate(self, x: np.ndarray, class_probabilities: np.ndarray,
                  bogus: np.ndarray | None, explain: bool
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        weights = self._weights(class_probabilities)
        per_class = np.empty((x.shape[0], len(self.forests)))
        contributions = np.zeros_like(x)
        for i, (c, forest) in enumerate(self.forests.items()):
            ranked = to_ranks(x, self._packed[c])
            if not explain:
                per_class[:, i] = forest.score(ranked)
                continue
            per_class[:, i], gains = forest.score_and_gains(ranked)
            total = gains.sum(axis=1, keepdims=True)
            shares = np.divide(gains, total, out=np.zeros_like(gains), where=total > 0)
            contributions += (weights[:, i] * per_class[:, i])[:, None] * shares
        raw = (weights * per_class).sum(axis=1) * (1.0 - bogus_gate(bogus, x.shape[0]))
        branches = {}
        for branch in BRANCHES:
            cols = [i for i, c in enumerate(self.forests) if TOP_OF[c] == branch]
            w = weights[:, cols].sum(axis=1)
            branches[branch] = np.divide((weights[:, cols] * per_class[:, cols]).sum(axis=1),
                                         w, out=np.full(x.shape[0], np.nan), where=w > 0)
        return raw, branches, contributions

    def raw_score(self, x: np.ndarray, class_probabilities: np.ndarray,
                  bogus: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Gated raw scores and the per-branch scores of the raw feature matrix ``x``."""
        raw, branches, _ = self._evaluate(x, class_probabilities, bogus, explain=False)
        return raw, branches

    def score(self, features: pd.DataFrame, class_probabilities: np.ndarray,
              bogus: np.ndarray | None = None) -> AnomalyScores:
        """Score a feature table.

        Parameters
        ----------
        features
            Rows = objects, columns = feature names (the model's are picked by name).
        class_probabilities
            (n, 15) the light-curve classifier's probabilities in the taxonomy's order
            (``ml.lc_classifier.taxonomy.CLASSES``).
        bogus
            (n,) the stamp classifier's P(bogus) per object; NaN or None = unknown (0).
        """
        x = self.matrix(features)
        raw, branches, contributions = self._evaluate(x, class_probabilities, bogus,
                                                      explain=True)
        total = contributions.sum(axis=1, keepdims=True)
        contributions = np.divide(contributions, total, out=np.zeros_like(contributions),
                                  where=total > 0)
        return AnomalyScores(score=percentile(raw, self.quantiles), raw=raw,
                             branches=branches, contributions=contributions, values=x,
                             features=self.features)

    # -- artefacts ----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write ``forests.json`` (rank points, forests, reference) and ``model.json``
        (the card)."""
        directory.mkdir(parents=True, exist_ok=True)
        body = {"features": self.features,
                "ranks": {c: [r.tolist() for r in points] for c, points in self.ranks.items()},
                "quantiles": self.quantiles.tolist(),
                "forests": {c: f.to_json() for c, f in self.forests.items()}}
        (directory / "forests.json").write_text(json.dumps(body) + "\n")
        card = {**self.card, "features": self.features, "classes": list(self.forests),
                "files": {"forests": "forests.json"}, "format": "isolation-forest-json"}
        (directory / "model.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path) -> AnomalyModel:
        card = json.loads((directory / "model.json").read_text())
        if card.get("format") != "isolation-forest-json":
            raise ValueError(f"{directory}: not an anomaly model ({card.get('format')})")
        body = json.loads((directory / card["files"]["forests"]).read_text())
        features = list(body["features"])
        unknown = [c for c in body["forests"] if c not in CLASSES]
        if unknown or not body["forests"]:
            raise ValueError(f"{directory}: forests for no class or unknown ones {unknown}")
        forests = {c: Forest.from_json(body["forests"][c]) for c in CLASSES
                   if c in body["forests"]}
        ranks = {c: [np.asarray(r, dtype=np.float64) for r in body["ranks"][c]]
                 for c in forests}
        if any(f.n_features != len(features) for f in forests.values()) \
                or any(len(r) != len(features) or any(p.size == 0 for p in r)
                       for r in ranks.values()):
            raise ValueError(f"{directory}: forests or rank points differ from the features")
        return cls(features=features, ranks=ranks, forests=forests,
                   quantiles=np.asarray(body["quantiles"], dtype=np.float64), card=card)


def bogus_gate(bogus: np.ndarray | None, n: int) -> np.ndarray:
    """The stamp classifier's P(bogus) of ``n`` objects as the gate uses it: NaN or
    None (never stamp-classified) count as 0, values are clipped to [0, 1]."""
    if bogus is None:
        return np.zeros(n)
    b = np.asarray(bogus, dtype=np.float64)
    return np.clip(np.where(np.isfinite(b), b, 0.0), 0.0, 1.0)
