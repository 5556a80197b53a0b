"""The hierarchical light-curve classifier: a top LightGBM model and one per branch.

As ALeRCE's (Sánchez-Sáez et al. 2021 §4): the top level separates Transient,
Stochastic and Periodic; each branch model separates the classes of its branch; the
probability of class c in branch b is P(b) P(c | b), so the 15 probabilities sum to 1.
Class imbalance is handled with balanced class weights (ALeRCE uses balanced random
forests); missing features reach LightGBM as NaN, which it routes natively.

Artefacts are safe formats only: LightGBM's text model per level and a JSON card
(:mod:`ml.registry`).  No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.lc_classifier.taxonomy import (
    BRANCH_CLASSIFIERS,
    CLASSES,
    FULL_CLASSIFIER,
    HIERARCHY,
    TOP_CLASSES,
    TOP_CLASSIFIER,
    TOP_OF,
)
from ml.probabilities import ranked_rows

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 5,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
}
NUM_ROUNDS = 300


class ModelMismatchError(ValueError):
    """A model's feature list does not match the feature extractor's."""


@dataclass
class Prediction:
    """Probabilities of every level for a batch of objects (rows in input order)."""

    top: np.ndarray  #: (n, 3) in TOP_CLASSES order
    branches: dict[str, np.ndarray]  #: top class -> (n, k) in HIERARCHY[top] order
    full: np.ndarray  #: (n, 15) in CLASSES order: P(branch) * P(class | branch)

    def rows(self, index: int, version: str) -> list[dict[str, Any]]:
        """One object's probabilities as ALeRCE's probability rows (ranked per classifier)."""
        out: list[dict[str, Any]] = []

        def add(classifier: str, names: tuple[str, ...], probs: np.ndarray) -> None:
            out.extend(ranked_rows(classifier, version, names, probs))

        add(FULL_CLASSIFIER, CLASSES, self.full[index])
        add(TOP_CLASSIFIER, TOP_CLASSES, self.top[index])
        for top, names in HIERARCHY.items():
            add(BRANCH_CLASSIFIERS[top], names, self.branches[top][index])
        return out


def _balanced_weights(labels: np.ndarray) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    per_class = dict(zip(classes, len(labels) / (len(classes) * counts), strict=True))
    return np.array([per_class[c] for c in labels])


def _fit(x: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], seed: int,
         params: dict[str, Any], rounds: int) -> lgb.Booster:
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels])
    data = lgb.Dataset(x, label=y, weight=_balanced_weights(labels), free_raw_data=True)
    run = {**params, "num_class": len(classes), "seed": seed}
    return lgb.train(run, data, num_boost_round=rounds)


def _predict(booster: lgb.Booster | None, x: np.ndarray, n_classes: int,
             present: list[int]) -> np.ndarray:
    """Probabilities over all ``n_classes`` (classes absent from training get 0)."""
    out = np.zeros((len(x), n_classes))
    if booster is None:  # a branch trained on a single class
        out[:, present[0]] = 1.0
        return out
    out[:, present] = np.asarray(booster.predict(x)).reshape(len(x), -1)
    return out


@dataclass
class HierarchicalModel:
    """Top and branch LightGBM boosters with the feature list they were trained on."""

    features: list[str]
    top: lgb.Booster | None
    branches: dict[str, lgb.Booster | None]
    #: indices (within each level's full class list) of the classes each booster knows
    present: dict[str, list[int]]
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.card.get("version", "0.0.0"))

    @classmethod
    def train(cls, features: pd.DataFrame, labels: pd.Series, seed: int = 0,
              params: dict[str, Any] | None = None, rounds: int = NUM_ROUNDS
              ) -> HierarchicalModel:
        """Train on a feature table (rows = objects, columns = feature names) and labels
        in the 15-class taxonomy (aligned with the table's rows)."""
        params = {**DEFAULT_PARAMS, **(params or {})}
        x = features.to_numpy(dtype=np.float64)
        y = labels.to_numpy().astype(str)
        unknown = sorted(set(y) - set(CLASSES))
        if unknown:
            raise ValueError(f"labels outside the taxonomy: {unknown}")
        tops = np.array([TOP_OF[c] for c in y])
        present: dict[str, list[int]] = {}
        top_present = [i for i, c in enumerate(TOP_CLASSES) if c in set(tops)]
        present["top"] = top_present
        top_classes = tuple(TOP_CLASSES[i] for i in top_present)
        top = _fit(x, tops, top_classes, seed, params, rounds) if len(top_present) > 1 \
            else None
        branches: dict[str, lgb.Booster | None] = {}
        for branch, names in HIERARCHY.items():
            rows = tops == branch
            known = [i for i, c in enumerate(names) if c in set(y[rows])]
            present[branch] = known or [0]
            branch_classes = tuple(names[i] for i in known)
            branches[branch] = _fit(x[rows], y[rows], branch_classes, seed, params, rounds) \
                if len(known) > 1 else None
        return cls(features=list(features.columns), top=top, branches=branches,
                   present=present)

    def check_features(self, extractor_features: tuple[str, ...] | list[str]) -> None:
        """Refuse a model whose features the extractor does not produce."""
        missing = [f for f in self.features if f not in set(extractor_features)]
        if missing:
            raise ModelMismatchError(
                f"model {self.card.get('name', '?')} {self.version} needs {len(missing)} "
                f"feature(s) this extractor does not produce, e.g. {missing[:5]}; retrain it "
                "with `nightjar ml train lc` or use a model built for this extractor")

    def predict(self, features: pd.DataFrame) -> Prediction:
        """Probabilities for a feature table (its columns are matched by name)."""
        lack = [f for f in self.features if f not in features.columns]
        if lack:
            raise ModelMismatchError(f"feature table lacks {len(lack)} model feature(s), "
                                     f"e.g. {lack[:5]}")
        x = features[self.features].to_numpy(dtype=np.float64)
        top = _predict(self.top, x, len(TOP_CLASSES), self.present["top"])
        branches = {b: _predict(self.branches[b], x, len(names), self.present[b])
                    for b, names in HIERARCHY.items()}
        full = np.hstack([top[:, [i]] * branches[b] for i, b in enumerate(TOP_CLASSES)])
        return Prediction(top=top, branches=branches, full=full)

    # -- artefacts ----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write LightGBM text models and ``model.json`` (the card) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, str | None] = {}
        for level, booster in [("top", self.top), *self.branches.items()]:
            name = f"{level.lower()}.txt"
            if booster is None:
                files[level] = None
                continue
            booster.save_model(str(directory / name))
            files[level] = name
        card = {**self.card, "features": self.features, "present": self.present,
                "files": files, "format": "lightgbm-text"}
        (directory / "model.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path) -> HierarchicalModel:
        card = json.loads((directory / "model.json").read_text())
        if card.get("format") != "lightgbm-text":
            raise ValueError(f"{directory}: not a LightGBM text model ({card.get('format')})")

        def booster(level: str) -> lgb.Booster | None:
            name = card["files"].get(level)
            return None if name is None else lgb.Booster(model_file=str(directory / name))

        return cls(features=list(card["features"]), top=booster("top"),
                   branches={b: booster(b) for b in HIERARCHY},
                   present={k: list(v) for k, v in card["present"].items()}, card=card)
