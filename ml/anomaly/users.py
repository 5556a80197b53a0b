"""Users teach the score: per-user leaf weights over the shared forests (AAD).

Active anomaly detection (Das et al. 2017; Ishida et al. 2021) reweighs a forest's
leaves so that what a user called an anomaly scores high and what they called ordinary
scores low.  Here the forests are the shared model's, served from their stored node
arrays, and only the weights are the user's: with every weight 1 a user's raw score is
the shared one, exactly.  A user's raw score of object x is

    raw_u(x) = (1 - P(bogus)) sum_c w_c(x) 2^(-h_u,c(x) / c(n_c)),
    h_u,c(x) = mean over trees t of omega_leaf(t, x) * path(t, x)

and the weights omega >= 0 minimise, over the user's labels,

    sum_anomalies max(0, tau - raw_u) + sum_regular max(0, raw_u - tau)
      + (lambda / 2) ||omega - 1||^2

with tau the shared reference's 95th percentile (an anomaly belongs in the top 5 %), by
projected gradient descent.  A leaf no labelled object reaches keeps weight 1, so the
weights are stored sparsely.  coniferest's AADForest solves the same kind of problem
but can only weigh the trees it grew itself (its trees cannot be built from stored
arrays), hence this small solver.  ``ARTEFACT`` labels count as regular and also gate
the object to 0 for that user (the bogus gate, taught).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.anomaly.model import AnomalyModel, bogus_gate, to_ranks

ANOMALY, NOT_ANOMALY, ARTEFACT = "ANOMALY", "NOT_ANOMALY", "ARTEFACT"
LABELS = (ANOMALY, NOT_ANOMALY, ARTEFACT)
#: an anomaly should score in the reference's top 5 %
TARGET_LEVEL = 0.95
PRIOR = 1.0
ITERATIONS = 300
STEP = 50.0

Weights = dict[str, dict[int, float]]  #: class -> leaf node index -> weight (else 1)


@dataclass(frozen=True)
class Labelled:
    """One labelled object as the user saw it: its features (the model's columns), the
    classifier's 15 probabilities, P(bogus) and the label."""

    features: np.ndarray
    probabilities: np.ndarray
    bogus: float | None
    label: str


def _dense(model: AnomalyModel, weights: Weights | None) -> dict[str, np.ndarray]:
    out = {}
    for c, forest in model.forests.items():
        w = np.ones(forest.feature.shape[0])
        for node, value in (weights or {}).get(c, {}).items():
            w[int(node)] = value
        out[c] = w
    return out


def _paths(model: AnomalyModel, x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per class forest: the leaf reached in each tree (n, trees) and its path length."""
    out = {}
    for c, forest in model.forests.items():
        leaves = forest.leaves(to_ranks(x, model._packed[c]))
        out[c] = (leaves, forest.path[leaves])
    return out


def user_raw(model: AnomalyModel, x: np.ndarray, class_probabilities: np.ndarray,
             weights: Weights | None, bogus: np.ndarray | None = None) -> np.ndarray:
    """Raw scores of the feature matrix ``x`` (the model's columns) under a user's
    weights (None or empty = the shared model)."""
    dense = _dense(model, weights)
    class_weights = model._weights(class_probabilities)
    raw = np.zeros(x.shape[0])
    for i, (c, (leaves, paths)) in enumerate(_paths(model, x).items()):
        h = (dense[c][leaves] * paths).mean(axis=1)
        raw += class_weights[:, i] * 2.0 ** (-h / model.forests[c].normaliser)
    return raw * (1.0 - bogus_gate(bogus, x.shape[0]))


def fit_weights(model: AnomalyModel, labelled: Sequence[Labelled], prior: float = PRIOR,
                iterations: int = ITERATIONS, step: float = STEP) -> Weights:
    """A user's leaf weights from their labels (deterministic; empty without labels)."""
    if not labelled:
        return {}
    x = np.vstack([item.features for item in labelled])
    probs = np.vstack([item.probabilities for item in labelled])
    gate = 1.0 - bogus_gate(np.array([np.nan if item.bogus is None else item.bogus
                                      for item in labelled]), len(labelled))
    sign = np.array([1.0 if item.label == ANOMALY else -1.0 for item in labelled])
    tau = float(np.interp(TARGET_LEVEL, np.linspace(0, 1, model.quantiles.shape[0]),
                          model.quantiles))
    class_weights = model._weights(probs)
    paths = _paths(model, x)
    # only the leaves the labelled objects reach move: optimise those, per class
    touched = {c: np.unique(leaves) for c, (leaves, _) in paths.items()}
    omega = {c: np.ones(nodes.shape[0]) for c, nodes in touched.items()}
    position = {c: np.searchsorted(touched[c], leaves) for c, (leaves, _) in paths.items()}
    n = len(labelled)
    for _ in range(iterations):
        raw = np.zeros(n)
        terms = {}
        for i, c in enumerate(model.forests):
            leaves_path = paths[c][1]
            h = (omega[c][position[c]] * leaves_path).mean(axis=1)
            s = 2.0 ** (-h / model.forests[c].normaliser)
            terms[c] = s
            raw += class_weights[:, i] * s
        raw *= gate
        # hinge: anomalies below tau pull up, regulars above tau push down
        active = sign * (tau - raw) > 0
        if not active.any():
            break
        coefficient = np.where(active, -sign, 0.0)  # d loss / d raw
        for i, c in enumerate(model.forests):
            trees = paths[c][1].shape[1]
            # d raw / d omega_leaf = -gate w_c ln2 s_c path / (T c(n))
            d_raw = -(gate * class_weights[:, i] * np.log(2.0) * terms[c]
                      / (trees * model.forests[c].normaliser))
            grad = np.zeros_like(omega[c])
            np.add.at(grad, position[c], (coefficient * d_raw)[:, None] * paths[c][1])
            grad += prior / n * (omega[c] - 1.0)
            omega[c] = np.maximum(omega[c] - step * grad, 0.0)
    return {c: {int(node): float(w) for node, w in zip(touched[c], omega[c], strict=True)
                if abs(w - 1.0) > 1e-12} for c in model.forests}
