"""Classifier output as ALeRCE's probability rows, shared by every classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ranked_rows(classifier: str, version: str, names: Sequence[str],
                probabilities: np.ndarray) -> list[dict[str, Any]]:
    """One object's probabilities as rows ``{classifier_name, classifier_version,
    class_name, probability, ranking}``, most probable first (ranking 1)."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")
    return [{"classifier_name": classifier, "classifier_version": version,
             "class_name": names[j], "probability": float(probabilities[j]), "ranking": rank}
            for rank, j in enumerate(order, start=1)]
