"""The stamp classification step: each object's first alert in, probability rows out.

The stamp classifier (:mod:`ml.stamp_classifier`) sees the first alert Nightjar receives
of an object that carries its three cutouts, once: an object with a stored stamp
classification is never classified again, and the rows record the candid used.  The
step is batched: one ONNX Runtime call classifies every new object of a pipeline batch.
It runs inline in both drivers (embedded runner and Kafka worker): at a few
milliseconds per alert it does not need its own agent.  The shipped model is a ZTF
model (63 px at 1″/px, ZTF's metadata): it classifies ZTF objects only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.registry import ModelRegistry
from ml.stamp_classifier import NAME
from ml.stamp_classifier.preprocess import CUTOUT_KINDS, STAMP_SIZE, centre_crop
from ml.stamp_classifier.runtime import StampModel
from nightjar.core.lightcurve import ObjectHistory, ObjectState
from nightjar.core.stamps import StampError, cutout_image, gunzip_fits
from nightjar.surveys.interface import ZTF, ParsedAlert


def cutout_triplet(cutouts: Mapping[str, bytes]) -> np.ndarray | None:
    """The science, template and difference images of an alert as a (3, 63, 63) float32
    array (NaN kept, truncated cutouts NaN-padded); None when one is missing or broken."""
    images = []
    for kind in CUTOUT_KINDS:
        data = cutouts.get(kind)
        if not data:
            return None
        try:
            image, _ = cutout_image(gunzip_fits(data))
        except StampError:
            return None
        images.append(centre_crop(image, STAMP_SIZE))
    return np.stack(images).astype(np.float32)


def has_stamp_classification(history: ObjectHistory) -> bool:
    """Whether the store already holds the object's stamp classification."""
    prefix = f"{history.oid}:{NAME}:"
    return any(str(_id).startswith(prefix)
               for _id in history.attached_ids.get("probabilities", ()))


@dataclass(frozen=True)
class StampInput:
    """The alert a stamp classification uses."""

    oid: str
    candid: int
    images: np.ndarray  #: (3, 63, 63) raw cutouts
    candidate: dict[str, Any]


def first_classifiable(alerts: Sequence[ParsedAlert]) -> StampInput | None:
    """The earliest alert (by ``jd``, then candid) of one object with usable cutouts."""
    for alert in sorted(alerts, key=lambda a: (a.candidate.get("jd") or 0.0, a.candid)):
        images = cutout_triplet(alert.cutouts)
        if images is not None:
            return StampInput(alert.oid, alert.candid, images, alert.candidate)
    return None


class StampClassifierHook:
    """The *stamp* step's hook: classify the first alert of objects never classified.

    Called with all objects of a batch at once (one ONNX Runtime run); returns them with
    the stamp classifier's rows added to ``probabilities``.
    """

    def __init__(self, model: StampModel):
        self.model = model

    def __call__(self, states: Sequence[ObjectState]) -> list[ObjectState]:
        todo: list[tuple[int, StampInput]] = []
        for i, state in enumerate(states):
            if state.survey != ZTF or has_stamp_classification(state.history):
                continue
            chosen = first_classifiable(state.alerts)
            if chosen is not None:
                todo.append((i, chosen))
        out = list(states)
        if not todo:
            return out
        probabilities = self.model.predict([t.images for _, t in todo],
                                           [t.candidate for _, t in todo])
        for (i, chosen), probs in zip(todo, probabilities, strict=True):
            state = out[i]
            out[i] = replace(state, probabilities=[*state.probabilities,
                                                   *self.model.rows(probs, chosen.candid)])
        return out


def load_stamp_model(home: Path, version: str | None = None) -> StampModel:
    """The registered stamp classifier (newest, or the pinned version)."""
    registered = ModelRegistry.default(home).get(NAME, version)
    return StampModel.load(registered.path)
