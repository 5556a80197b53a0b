"""Evaluation of a stamp classifier on labelled alerts: metrics and a confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.metrics import level_metrics, plot_confusion
from ml.stamp_classifier import CLASSES
from ml.stamp_classifier.dataset import StampSet
from ml.stamp_classifier.runtime import StampModel


def predict_set(model: StampModel, data: StampSet) -> np.ndarray:
    """Probabilities (n, classes) of every alert of ``data``."""
    return model.predict(list(data.images), data.candidates)


def evaluate(model: StampModel, data: StampSet) -> dict[str, Any]:
    """Balanced accuracy, per-class recall and precision, confusion matrix (rows = true),
    and each alert's prediction (oid, candid, true, predicted, probability)."""
    probabilities = predict_set(model, data)
    predicted = np.array(model.classes)[np.argmax(probabilities, axis=1)]
    metrics = level_metrics(data.labels.astype(str), predicted, CLASSES)
    metrics["predictions"] = [
        {"oid": oid, "candid": candid, "true": str(true), "predicted": str(pred),
         "probability": round(float(p.max()), 4)}
        for oid, candid, true, pred, p in zip(data.oids, data.candids, data.labels, predicted,
                                              probabilities, strict=True)]
    return metrics


def write_report(metrics: dict[str, Any], name: str, directory: Path) -> Path:
    """The confusion-matrix PNG of one evaluation; returns its path."""
    path = directory / f"confusion_{name}.png"
    plot_confusion(metrics, f"stamp classifier: {name}", path)
    return path
