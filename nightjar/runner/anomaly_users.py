"""Users teach the anomaly score: stored documents in, labels, user models and rankings out.

Pure functions over what the store holds (feature documents, probability rows, label
documents); the gateway's ``labelAnomaly`` mutation and ``myAnomalies`` query are their
thin drivers.  The science is :mod:`ml.anomaly.users`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.anomaly.model import AnomalyModel, percentile
from ml.anomaly.users import ARTEFACT, LABELS, Labelled, Weights, fit_weights, user_raw
from ml.lc_classifier.taxonomy import CLASSES, FULL_CLASSIFIER
from ml.stamp_classifier import NAME as STAMP_CLASSIFIER

Doc = dict[str, Any]


def snapshot(model: AnomalyModel, feature_doc: Mapping[str, Any],
             rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float | None],
                                                         list[float], float | None]:
    """What the user saw: the model's features, the 15 probabilities, P(bogus)."""
    values = feature_doc.get("values", {})
    features = {name: values.get(name) for name in model.features}
    by_class = {r["class_name"]: float(r["probability"]) for r in rows
                if r["classifier_name"] == FULL_CLASSIFIER}
    bogus = next((float(r["probability"]) for r in rows
                  if r["classifier_name"] == STAMP_CLASSIFIER and r["class_name"] == "bogus"),
                 None)
    return features, [by_class.get(c, 0.0) for c in CLASSES], bogus


def label_doc(model: AnomalyModel, user: str, oid: str, label: str,
              feature_doc: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
              now: dt.datetime) -> Doc:
    """The stored label: who, when, the model version and the snapshot."""
    if label not in LABELS:
        raise ValueError(f"an anomaly label is one of {LABELS}, not {label!r}")
    features, probabilities, bogus = snapshot(model, feature_doc, rows)
    return {"_id": f"{user}|{oid}", "user": user, "oid": oid, "label": label,
            "created": now, "model_name": str(model.card.get("name", "")),
            "model_version": model.version, "features": features,
            "probabilities": probabilities, "bogus": bogus}


def _vector(model: AnomalyModel, features: Mapping[str, Any]) -> np.ndarray:
    return np.array([np.nan if features.get(n) is None else float(features[n])
                     for n in model.features])


def fit_user_model(model: AnomalyModel, user: str, labels: Sequence[Mapping[str, Any]],
                   now: dt.datetime) -> Doc:
    """The user's model document, fitted from all of their labels (their snapshots)."""
    items = [Labelled(_vector(model, d["features"]), np.asarray(d["probabilities"]),
                      d.get("bogus"), d["label"]) for d in labels]
    weights = fit_weights(model, items)
    return {"_id": user, "model_name": str(model.card.get("name", "")),
            "model_version": model.version, "fitted": now, "n_labels": len(labels),
            "weights": {c: {str(node): w for node, w in leaves.items()}
                        for c, leaves in weights.items()},
            "artefacts": sorted(d["oid"] for d in labels if d["label"] == ARTEFACT)}


def weights_of(user_model: Mapping[str, Any] | None, model: AnomalyModel) -> Weights:
    """A stored user model's weights, or none when it was fitted for another version."""
    if not user_model or user_model.get("model_version") != model.version:
        return {}
    return {c: {int(node): float(w) for node, w in leaves.items()}
            for c, leaves in user_model.get("weights", {}).items()}


@dataclass(frozen=True)
class Ranked:
    oid: str
    score: float  #: percentile of the user's raw score in the shared reference
    raw: float
    shared_raw: float


def rank(model: AnomalyModel, feature_docs: Mapping[str, Mapping[str, Any]],
         rows_by_oid: Mapping[str, Sequence[Mapping[str, Any]]],
         user_model: Mapping[str, Any] | None,
         flagged: Collection[str] = ()) -> list[Ranked]:
    """Every scored object, most unusual first by the user's model (the shared model's
    ranking without one); objects the user marked ARTEFACT score 0 for them, and so do
    ``flagged`` ones (enough users said ARTEFACT: bogus for everyone) for all."""
    oids = [o for o in feature_docs if o in rows_by_oid]
    if not oids:
        return []
    snaps = [snapshot(model, feature_docs[o], rows_by_oid[o]) for o in oids]
    x = np.vstack([_vector(model, s[0]) for s in snaps])
    probabilities = np.array([s[1] for s in snaps])
    bogus = np.array([1.0 if o in flagged else np.nan if s[2] is None else s[2]
                      for o, s in zip(oids, snaps, strict=True)])
    weights = weights_of(user_model, model)
    mine = user_raw(model, x, probabilities, weights, bogus)
    shared = user_raw(model, x, probabilities, None, bogus)
    artefacts = set((user_model or {}).get("artefacts", ()))
    mine = np.where(pd.Index(oids).isin(list(artefacts)), 0.0, mine)
    scores = percentile(mine, model.quantiles)
    order = np.lexsort((np.array(oids), -mine))
    return [Ranked(oids[i], float(scores[i]), float(mine[i]), float(shared[i]))
            for i in order]
