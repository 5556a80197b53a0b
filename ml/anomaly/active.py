"""Simulated active anomaly detection: how fast does each method find what a user wants?

A user is a set of classes they call anomalous; the labels of real objects are the
oracle.  Each method shows its top unlabelled object, the oracle answers (anomaly if
its class is one of the user's, else regular), the method refits, and so on for a
budget of queries (Ishida et al. 2021; coniferest's ``OracleSession`` runs the loop).
The discovery curve is the number of the user's objects found after each query.

Methods (all coniferest, on the same rank-space features as Nightjar's model): the plain
isolation forest (it ignores the answers: a fixed ranking), AADForest (Das et al. 2017:
leaf weights refitted to the answers) and PineForest (Korolev et al.: trees filtered by
the answers).  A random order finds the base rate times the number of queries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml.anomaly.model import rank_points, to_ranks
from ml.anomaly.train import model_features

QUERIES = 100
SEEDS = (0, 1, 2, 3, 4)
CHECKPOINTS = (10, 25, 50, 100)
#: two users with different interests (each ~8 % of the labelled rows)
USERS: dict[str, tuple[str, ...]] = {"agn_and_blazars": ("AGN", "Blazar"),
                                     "cvs_and_superluminous_sne": ("CV/Nova", "SLSN")}
METHODS = ("isolation_forest", "aad_forest", "pine_forest")
N_TREES = 100


def _model(method: str, seed: int) -> Any:
    from coniferest.aadforest import AADForest
    from coniferest.isoforest import IsolationForest
    from coniferest.pineforest import PineForest

    makers: dict[str, Callable[[], Any]] = {
        "isolation_forest": lambda: IsolationForest(n_trees=N_TREES, random_seed=seed,
                                                    n_jobs=1),
        "aad_forest": lambda: AADForest(n_trees=N_TREES, random_seed=seed, n_jobs=1),
        "pine_forest": lambda: PineForest(n_trees=N_TREES, n_spare_trees=4 * N_TREES,
                                          random_seed=seed, n_jobs=1)}
    return makers[method]()


def discovery_curve(data: np.ndarray, interesting: np.ndarray, method: str, seed: int,
                    queries: int = QUERIES) -> np.ndarray:
    """Cumulative count of interesting objects found after each of ``queries`` queries."""
    from coniferest.label import Label
    from coniferest.session.oracle import OracleSession

    labels = np.where(interesting, Label.ANOMALY, Label.REGULAR)
    found: list[int] = []
    session = OracleSession(
        np.ascontiguousarray(data, dtype=np.float64), labels, model=_model(method, seed),
        max_iterations=queries, max_anomalies=len(labels) + 1,
        on_decision_callbacks=[lambda _m, _d, s: found.append(
            int(s.last_decision == Label.ANOMALY))])
    session.run()
    return np.cumsum(np.asarray(found, dtype=np.int64))


def rank_space(features: pd.DataFrame) -> np.ndarray:
    """The rows in the rank space Nightjar's forests split in (one transform over all)."""
    names = model_features(list(features.columns), features)
    raw = features[names].to_numpy(dtype=np.float64)
    return to_ranks(raw, rank_points(raw))


def evaluate_active_learning(features: pd.DataFrame, labels: pd.Series,
                             users: dict[str, tuple[str, ...]] | None = None,
                             seeds: tuple[int, ...] = SEEDS, queries: int = QUERIES
                             ) -> dict[str, Any]:
    """Discovery curves per user and method: mean, min and max over ``seeds`` at each
    checkpoint, and the random expectation."""
    data = rank_space(features)
    out: dict[str, Any] = {"n_rows": len(labels), "queries": queries, "seeds": list(seeds),
                           "n_trees": N_TREES, "users": {}}
    for user, classes in (users or USERS).items():
        interesting = labels.isin(classes).to_numpy()
        entry: dict[str, Any] = {"classes": list(classes), "n_interesting": int(interesting.sum()),
                                 "methods": {}}
        checkpoints = [q for q in CHECKPOINTS if q <= queries]
        entry["random"] = {str(q): q * float(interesting.mean()) for q in checkpoints}
        for method in METHODS:
            curves = np.vstack([_padded(discovery_curve(data, interesting, method, s, queries),
                                        queries) for s in seeds])
            entry["methods"][method] = {
                "mean_curve": curves.mean(axis=0).tolist(),
                "at": {str(q): {"mean": float(curves[:, q - 1].mean()),
                                "min": int(curves[:, q - 1].min()),
                                "max": int(curves[:, q - 1].max())} for q in checkpoints}}
        out["users"][user] = entry
    return out


def _padded(curve: np.ndarray, queries: int) -> np.ndarray:
    # a session ends early when every object is labelled: the count then stays
    if curve.size >= queries:
        return curve[:queries]
    last = curve[-1] if curve.size else 0
    return np.concatenate([curve, np.full(queries - curve.size, last)])
