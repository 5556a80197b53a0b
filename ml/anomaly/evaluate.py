"""How well does a score find what it was never shown?  Hold one class out at a time.

For a held-out class C of a labelled real set, every row is split into two folds
(stratified by class, fixed seed).  Each method is trained on one fold *without* C and
scores the other fold, C included; the two folds' scores together rank every row, and
C's members are the anomalies to find.  Metrics: precision in the top 10 and top 50,
recall in the top 1 % and 5 %, AUROC; 95 % intervals by bootstrap over the rows.

Methods, all trained on the same rows:

* ``nightjar``: :class:`ml.anomaly.model.AnomalyModel`'s recipe (forests per class in
  rank space, weighted by the hierarchical classifier trained on the same rows);
* ``fink_style``: as Fink's SNAD module, one forest per band over ~25 statistics of that
  band, the object's score the mean over its observed bands;
* ``global_forest``: one forest over every feature;
* ``entropy``: the entropy of the hierarchical classifier's 15 probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml.anomaly.train import fill_missing, fill_values, fit_model, grow_forest, model_features
from ml.lc_classifier.model import HierarchicalModel, Prediction
from ml.lc_classifier.taxonomy import TOP_OF

#: per-band statistics of Fink's SNAD anomaly features (light-curve package names mapped
#: to ALeRCE's where the definition is the same); suffix _1 = g, _2 = r
FINK_STATISTICS = ("Amplitude", "AndersonDarling", "Autocor_length", "Beyond1Std", "Con",
                   "Eta_e", "Gskew", "LinearTrend", "MaxSlope", "Mean", "Meanvariance",
                   "MedianAbsDev", "MedianBRP", "PairSlopeTrend", "PercentAmplitude",
                   "Q31", "Rcs", "Skew", "SmallKurtosis", "Std", "StetsonK", "Pvar",
                   "ExcessVar", "IAR_phi", "MHAOV_Period")
BANDS = ("1", "2")
METHODS = ("nightjar", "fink_style", "global_forest", "entropy")
METRICS = ("precision_at_10", "precision_at_50", "recall_top_1pct", "recall_top_5pct",
           "auroc")
BOOTSTRAP = 1000
#: small trees budget for the evaluation (several hundred fits); the shipped model uses
#: ml.anomaly.train.N_TREES
EVAL_TREES = 200

#: (training rows, their labels, rows to score, seed, the classifier's prediction for
#: the rows to score, trained on the same training rows) -> scores
Scorer = Callable[[pd.DataFrame, pd.Series, pd.DataFrame, int, Prediction], np.ndarray]


def ranking_metrics(scores: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """Ranking quality of ``scores`` (higher = more anomalous) for boolean ``positive``."""
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    n, n_pos = len(scores), int(positive.sum())

    def recall_top(share: float) -> float:
        k = max(1, round(share * n))
        return float(hits[:k].sum() / n_pos) if n_pos else float("nan")

    auroc = float(roc_auc_score(positive, scores)) if 0 < n_pos < n else float("nan")
    return {"precision_at_10": float(hits[:10].mean()),
            "precision_at_50": float(hits[:50].mean()),
            "recall_top_1pct": recall_top(0.01), "recall_top_5pct": recall_top(0.05),
            "auroc": auroc}


def bootstrap_intervals(scores: np.ndarray, positive: np.ndarray, seed: int,
                        rounds: int = BOOTSTRAP) -> dict[str, list[float]]:
    """95 % percentile intervals of each metric over ``rounds`` resamplings of the rows."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    n = len(scores)
    for _ in range(rounds):
        rows = rng.integers(0, n, n)
        for name, value in ranking_metrics(scores[rows], positive[rows]).items():
            draws[name].append(value)
    return {m: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))]
            for m, v in draws.items()}


# -- the methods ---------------------------------------------------------------------------

def score_nightjar(train: pd.DataFrame, labels: pd.Series, test: pd.DataFrame,
                   seed: int, prediction: Prediction) -> np.ndarray:
    model = fit_model(train, labels, seed, EVAL_TREES)
    scores, _ = model.raw_score(model.matrix(test), prediction.full)
    return scores


def score_fink_style(train: pd.DataFrame, labels: pd.Series, test: pd.DataFrame,
                     seed: int, prediction: Prediction) -> np.ndarray:
    per_band = []
    for i, band in enumerate(BANDS):
        names = [f"{s}_{band}" for s in FINK_STATISTICS if f"{s}_{band}" in train.columns]
        raw = train[names].to_numpy(dtype=np.float64)
        observed_train = np.isfinite(raw).mean(axis=1) >= 0.5
        fill = fill_values(raw[observed_train])
        forest = grow_forest(fill_missing(raw[observed_train], fill), seed + i, EVAL_TREES)
        test_raw = test.reindex(columns=names).to_numpy(dtype=np.float64)
        band_score = forest.score(fill_missing(test_raw, fill))
        # a band the object was not observed in has no score (Fink scores per band)
        per_band.append(np.where(np.isfinite(test_raw).mean(axis=1) >= 0.5, band_score,
                                 np.nan))
    stacked = np.vstack(per_band)
    with np.errstate(all="ignore"):
        mean = np.nanmean(stacked, axis=0)
    return np.where(np.isfinite(mean), mean, 0.0)


def score_global_forest(train: pd.DataFrame, labels: pd.Series, test: pd.DataFrame,
                        seed: int, prediction: Prediction) -> np.ndarray:
    names = model_features(list(train.columns), train)
    raw = train[names].to_numpy(dtype=np.float64)
    fill = fill_values(raw)
    forest = grow_forest(fill_missing(raw, fill), seed, EVAL_TREES)
    return forest.score(fill_missing(test.reindex(columns=names).to_numpy(np.float64), fill))


def score_entropy(train: pd.DataFrame, labels: pd.Series, test: pd.DataFrame,
                  seed: int, prediction: Prediction) -> np.ndarray:
    p = np.clip(prediction.full, 1e-12, 1.0)
    return np.asarray(-(p * np.log(p)).sum(axis=1))


SCORERS: dict[str, Scorer] = {"nightjar": score_nightjar, "fink_style": score_fink_style,
                              "global_forest": score_global_forest,
                              "entropy": score_entropy}


# -- the protocol ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HeldOut:
    """One held-out class's out-of-fold scores per method."""

    held_out: str
    positive: np.ndarray
    scores: dict[str, np.ndarray]


def two_folds(labels: pd.Series, seed: int) -> np.ndarray:
    """Fold 0/1 per row, each class split as evenly as it can be."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    values = labels.to_numpy().astype(str)
    for c in sorted(set(values)):
        rows = np.flatnonzero(values == c)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % 2
    return fold


def hold_out(features: pd.DataFrame, labels: pd.Series, held_out: str, seed: int,
             methods: tuple[str, ...] = METHODS) -> HeldOut:
    """Out-of-fold scores of every method with ``held_out`` never in training."""
    fold = two_folds(labels, seed)
    positive = (labels == held_out).to_numpy()
    scores = {m: np.empty(len(labels)) for m in methods}
    for k in (0, 1):
        train_rows = (fold != k) & ~positive
        test_rows = fold == k
        train, train_labels = features[train_rows], labels[train_rows]
        test = features[test_rows]
        prediction = HierarchicalModel.train(train, train_labels, seed=seed + k).predict(test)
        for m in methods:
            scores[m][test_rows] = SCORERS[m](train, train_labels, test, seed + k, prediction)
    return HeldOut(held_out, positive, scores)


def evaluate_held_out(features: pd.DataFrame, labels: pd.Series, min_members: int = 15,
                      seed: int = 0, methods: tuple[str, ...] = METHODS
                      ) -> dict[str, Any]:
    """Hold each class out in turn.  Classes with ``min_members`` or more are the
    evaluation (metrics and intervals per method); smaller ones, and every transient,
    are reported apart as anecdotes (metrics without intervals)."""
    counts = labels.value_counts()
    out: dict[str, Any] = {"n_rows": len(labels), "seed": seed, "min_members": min_members,
                           "bootstrap_rounds": BOOTSTRAP, "classes": {}, "anecdotes": {}}
    for c in sorted(counts.index):
        result = hold_out(features, labels, str(c), seed, methods)
        n_pos = int(result.positive.sum())
        entry: dict[str, Any] = {"n": n_pos, "base_rate": n_pos / len(labels),
                                 "methods": {}}
        main = counts[c] >= min_members and TOP_OF[str(c)] != "Transient"
        for m in methods:
            metrics: dict[str, Any] = ranking_metrics(result.scores[m], result.positive)
            if main:
                metrics["interval"] = bootstrap_intervals(result.scores[m], result.positive,
                                                          seed)
            entry["methods"][m] = metrics
        out["classes" if main else "anecdotes"][str(c)] = entry
    out["summary"] = summarise(out["classes"], methods)
    return out


def summarise(classes: dict[str, Any], methods: tuple[str, ...]) -> dict[str, Any]:
    """Per method, each metric's mean over the evaluated classes, and per class whether
    Nightjar's AUROC interval lies wholly above the Fink-style baseline's."""
    mean = {m: {k: float(np.nanmean([c["methods"][m][k] for c in classes.values()]))
                for k in METRICS} for m in methods}
    separated = {}
    for name, c in classes.items():
        ours, fink = c["methods"].get("nightjar"), c["methods"].get("fink_style")
        if ours and fink and "interval" in ours:
            separated[name] = ours["interval"]["auroc"][0] > fink["interval"]["auroc"][1]
    return {"mean": mean, "auroc_interval_above_fink_style": separated}
