"""Training drivers: labelled feature tables in, a registered model with its card out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ml.features.names import FEATURE_NAMES, WISE_NAMES
from ml.features.table import mask_degenerate_harmonics
from ml.lc_classifier.evaluate import evaluate, write_report
from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.taxonomy import FULL_CLASSIFIER, canonical
from ml.registry import library_versions as registry_library_versions

#: what the model reads: every extracted feature except the AllWISE colours, which the
#: live pipeline can never fill (a model must not learn from what it will not see)
MODEL_FEATURES: tuple[str, ...] = tuple(f for f in FEATURE_NAMES if f not in WISE_NAMES)


def library_versions() -> dict[str, str]:
    return registry_library_versions(("lightgbm", "numpy", "scipy", "celerite2",
                                      "scikit-learn", "pandas"))


def read_labels(table: pd.DataFrame) -> pd.Series:
    """``oid, classALeRCE`` (ALeRCE's labelled-set columns) -> canonical class per oid.

    Labels outside the 15 classes are dropped; the caller reports how many.
    """
    table = table.rename(columns={"objectId": "oid", "class": "classALeRCE",
                                  "class_name": "classALeRCE"})
    if "oid" not in table.columns or "classALeRCE" not in table.columns:
        raise ValueError("labels need columns oid (or objectId) and classALeRCE")
    labels = table.set_index("oid")["classALeRCE"].map(canonical).dropna()
    return labels[~labels.index.duplicated(keep="first")]


def align(features: pd.DataFrame, labels: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """Rows present in both, model columns in order (absent columns become NaN), and
    degenerate harmonic fits NaN as Nightjar's extractor leaves them (ALeRCE's tables
    keep them)."""
    common = features.index.intersection(labels.index)
    table = mask_degenerate_harmonics(features.loc[common]).reindex(
        columns=list(MODEL_FEATURES))
    return table.astype(np.float64), labels.loc[common]


def split(features: pd.DataFrame, labels: pd.Series, holdout: float, seed: int
          ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """Stratified train/held-out split (classes with one object go to training)."""
    counts = labels.value_counts()
    rare = labels.index[labels.map(counts) < 2]
    common = labels.index.difference(rare)
    if holdout <= 0 or len(common) < 2:
        return features, labels, features.iloc[:0], labels.iloc[:0]
    train_ids, test_ids = train_test_split(
        list(common), test_size=holdout, random_state=seed,
        stratify=labels.loc[common].to_numpy())
    train_ids = list(train_ids) + list(rare)
    return (features.loc[train_ids], labels.loc[train_ids], features.loc[test_ids],
            labels.loc[test_ids])


def train_and_register(features: pd.DataFrame, labels: pd.Series, out_dir: Path,
                       version: str, seed: int = 0, holdout: float = 0.3,
                       training_data: str = "", extra_card: dict[str, Any] | None = None
                       ) -> tuple[HierarchicalModel, dict[str, Any]]:
    """Train on a labelled table, evaluate on a stratified held-out part, save the model
    with its card and confusion matrices in ``out_dir``; returns the model and metrics."""
    x, y = align(features, labels)
    if len(x) == 0:
        raise ValueError("no object has both features and a label in the 15 classes")
    x_train, y_train, x_test, y_test = split(x, y, holdout, seed)
    model = HierarchicalModel.train(x_train, y_train, seed=seed)
    metrics = evaluate(model, x_test, y_test) if len(x_test) else {}
    model.card = {
        "name": FULL_CLASSIFIER, "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": sorted(set(y_train)), "n_train": len(x_train),
        "train_class_counts": {str(k): int(v) for k, v in y_train.value_counts().items()},
        "training_data": training_data, "seed": seed,
        "library_versions": library_versions(),
        "metrics": {"held_out": metrics} if metrics else {},
        **(extra_card or {}),
    }
    model.save(out_dir)
    if metrics:
        write_report(metrics, "held_out", out_dir)
    return model, metrics
