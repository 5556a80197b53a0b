"""Evaluation of the hierarchical classifier: metrics per level and confusion matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.taxonomy import CLASSES, TOP_CLASSES, TOP_OF


def level_metrics(true: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]
                  ) -> dict[str, Any]:
    """Balanced accuracy, macro precision/recall/F1 over the classes present in ``true``,
    per-class recall and support, and the confusion matrix (rows = true)."""
    present = [c for c in classes if c in set(true)]
    precision, recall, f1, _ = precision_recall_fscore_support(
        true, pred, labels=present, average="macro", zero_division=0)
    per_class_recall = {c: float(np.mean(pred[true == c] == c)) for c in present}
    return {
        "n": len(true),
        "balanced_accuracy": float(balanced_accuracy_score(true, pred)) if len(true) else None,
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "recall": per_class_recall,
        "support": {c: int(np.sum(true == c)) for c in present},
        "classes": list(classes),
        "confusion": confusion_matrix(true, pred, labels=list(classes)).tolist(),
    }


def evaluate(model: HierarchicalModel, features: pd.DataFrame, labels: pd.Series
             ) -> dict[str, Any]:
    """Metrics of ``model`` on labelled rows, at the top level and over the 15 classes."""
    prediction = model.predict(features)
    true = labels.to_numpy().astype(str)
    full_pred = np.array(CLASSES)[np.argmax(prediction.full, axis=1)]
    top_pred = np.array(TOP_CLASSES)[np.argmax(prediction.top, axis=1)]
    true_top = np.array([TOP_OF[c] for c in true])
    return {"top": level_metrics(true_top, top_pred, TOP_CLASSES),
            "full": level_metrics(true, full_pred, CLASSES)}


def plot_confusion(metrics: dict[str, Any], title: str, path: Path) -> None:
    """A row-normalised confusion matrix PNG (counts annotated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = metrics["classes"]
    counts = np.array(metrics["confusion"], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(rows > 0, counts / rows, 0.0)
    size = 2.0 + 0.45 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=7)
    ba = metrics["balanced_accuracy"]
    ax.set_title(f"{title}\n(n={metrics['n']}, balanced accuracy "
                 f"{ba:.2f})" if ba is not None else title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(metrics: dict[str, Any], name: str, directory: Path) -> list[Path]:
    """Confusion-matrix PNGs for both levels; returns the files written."""
    out = []
    for level in ("top", "full"):
        path = directory / f"confusion_{name}_{level}.png"
        plot_confusion(metrics[level], f"{name}: {level} level", path)
        out.append(path)
    return out
