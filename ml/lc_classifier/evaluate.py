"""Evaluation of the hierarchical classifier: metrics per level and confusion matrices."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.lc_classifier.model import HierarchicalModel
from ml.lc_classifier.taxonomy import CLASSES, TOP_CLASSES, TOP_OF
from ml.metrics import level_metrics, plot_confusion


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


def write_report(metrics: dict[str, Any], name: str, directory: Path) -> list[Path]:
    """Confusion-matrix PNGs for both levels; returns the files written."""
    out = []
    for level in ("top", "full"):
        path = directory / f"confusion_{name}_{level}.png"
        plot_confusion(metrics[level], f"{name}: {level} level", path)
        out.append(path)
    return out


def save_shipped(model: HierarchicalModel, evaluations: dict[str, Any], out_dir: Path,
                 model_card: Callable[[dict[str, Any]], str], started: float) -> None:
    """Write a built model, a confusion report per evaluation set and MODEL_CARD.md (from
    the saved card), and print the headline figures."""
    model.save(out_dir)
    for name, metrics in evaluations.items():
        write_report(metrics, name, out_dir)
    saved = json.loads((out_dir / "model.json").read_text())
    (out_dir / "MODEL_CARD.md").write_text(model_card(saved))
    print(json.dumps({k: {lvl: round(v[lvl]["balanced_accuracy"], 3) for lvl in ("top", "full")}
                      for k, v in evaluations.items()}, indent=1))
    print(f"model {model.version} written to {out_dir} in "
          f"{time.perf_counter() - started:.0f} s")
