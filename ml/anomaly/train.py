"""Grow the anomaly model's forests (coniferest) and its reference distribution."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml.anomaly.forest import Forest, from_coniferest
from ml.anomaly.model import (
    REFERENCE_POINTS,
    AnomalyModel,
    rank_points,
    to_ranks,
)
from ml.lc_classifier.taxonomy import CLASSES

N_TREES = 300
N_SUBSAMPLES = 256
#: a class needs this many training objects for a forest of its own
MIN_CLASS_ROWS = 4
#: not what makes a light curve unusual: sky position, the real/bogus score (the bogus
#: gate handles artefacts) and AllWISE colours (Nightjar has no AllWISE cross-match)
EXCLUDED = frozenset({"gal_l", "gal_b", "rb", "reliability", "W1-W2", "W2-W3", "r-W3",
                      "r-W2", "g-W3", "g-W2"})


def model_features(columns: Sequence[str], table: pd.DataFrame | None = None,
                   max_missing: float = 0.5) -> list[str]:
    """The columns an anomaly model reads: all but ``EXCLUDED``, and (given a training
    table) those missing in more than ``max_missing`` of its rows."""
    names = [c for c in columns if c not in EXCLUDED]
    if table is not None:
        present = table.reindex(columns=names).notna().mean()
        names = [c for c in names if present[c] >= 1.0 - max_missing]
    return names


def fill_missing(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``x`` with NaN and infinities replaced by the per-column ``fill``."""
    x = np.array(x, dtype=np.float64, copy=True)
    bad = ~np.isfinite(x)
    x[bad] = np.broadcast_to(fill, x.shape)[bad]
    return x


def fill_values(x: np.ndarray) -> np.ndarray:
    """Per-column median of the finite values (0 for a column with none)."""
    finite = np.where(np.isfinite(x), x, np.nan)
    with np.errstate(all="ignore"):
        medians = np.nanmedian(finite, axis=0) if x.shape[0] else np.zeros(x.shape[1])
    return np.where(np.isfinite(medians), medians, 0.0)


def grow_forest(x: np.ndarray, seed: int, n_trees: int = N_TREES,
                n_subsamples: int = N_SUBSAMPLES) -> Forest:
    """An isolation forest over the filled matrix ``x`` (coniferest, one thread)."""
    from coniferest.isoforest import IsolationForest  # training dependency only

    if x.shape[0] < 2:
        raise ValueError(f"an isolation forest needs at least 2 rows, got {x.shape[0]}")
    forest = IsolationForest(n_trees=n_trees, n_subsamples=min(n_subsamples, x.shape[0]),
                             n_jobs=1, random_seed=seed)
    forest.fit(np.ascontiguousarray(x, dtype=np.float64))
    return from_coniferest(forest, x.shape[1])


def class_forests(x: np.ndarray, labels: np.ndarray, seed: int,
                  n_trees: int = N_TREES, min_rows: int = MIN_CLASS_ROWS
                  ) -> tuple[dict[str, Forest], dict[str, list[np.ndarray]]]:
    """Per class (taxonomy order) with ``min_rows`` or more rows of the feature matrix:
    the rank points of its rows and a forest over them in that rank space."""
    forests, ranks = {}, {}
    for i, c in enumerate(CLASSES):
        rows = x[labels == c]
        if rows.shape[0] >= min_rows:
            ranks[c] = rank_points(rows)
            forests[c] = grow_forest(to_ranks(rows, ranks[c]), seed + i, n_trees)
    if not forests:
        raise ValueError(f"no class has {min_rows} or more training rows")
    return forests, ranks


def fit_model(features: pd.DataFrame, labels: pd.Series, seed: int = 0,
              n_trees: int = N_TREES, names: list[str] | None = None) -> AnomalyModel:
    """Per-class rank transforms and forests from labelled rows (no reference
    distribution yet: its quantiles are the identity)."""
    names = names or model_features(list(features.columns), features)
    raw = features.reindex(columns=names).to_numpy(dtype=np.float64)
    values = labels.to_numpy().astype(str)
    unknown = sorted(set(values) - set(CLASSES))
    if unknown:
        raise ValueError(f"labels outside the taxonomy: {unknown}")
    forests, ranks = class_forests(raw, values, seed, n_trees)
    return AnomalyModel(features=names, forests=forests, ranks=ranks,
                        quantiles=np.linspace(0.0, 1.0, REFERENCE_POINTS))


def train_model(features: pd.DataFrame, labels: pd.Series, probabilities: np.ndarray,
                seed: int = 0, n_trees: int = N_TREES, folds: int = 2) -> AnomalyModel:
    """Train on real labelled objects, with the reference distribution from the same
    rows scored out of fold (each by a model fitted without it, so the reference is not
    flattered by the rows its trees isolated).

    Parameters
    ----------
    features
        Feature table; its columns (less ``EXCLUDED`` and mostly-missing ones) are read.
    labels
        Each row's class in the 15-class taxonomy.
    probabilities
        (n, 15) the classifier's probabilities for the rows, as live objects get them;
        they weight the reference rows' class scores as live objects' are weighted.
    """
    model = fit_model(features, labels, seed, n_trees)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(np.arange(len(labels)) % folds)
    reference = np.empty(len(labels))
    for k in range(folds):
        held = fold == k
        partial = fit_model(features[~held], labels[~held], seed + 100 * (k + 1), n_trees,
                            names=model.features)
        reference[held], _ = partial.raw_score(partial.matrix(features[held]),
                                                  probabilities[held])
    model.quantiles = np.quantile(reference, np.linspace(0.0, 1.0, REFERENCE_POINTS))
    model.card["n_reference"] = len(reference)
    return model
