"""Classifier metrics shared by the light-curve and stamp classifiers: balanced accuracy,
per-class recall and precision, confusion matrices and their PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)


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
