"""The stamp classification step: each object's first alert in, probability rows out.

The stamp classifiers (:mod:`ml.stamp_classifier`, one per survey: ``stamp_classifier``
for ZTF, ``lsst_stamp_classifier`` for Rubin) see the first alert Nightjar receives of
an object that carries its three cutouts, once: an object with a stored stamp
classification is never classified again, and the rows record the candid used.  Each
object goes to its own survey's model only (a ZTF model never sees a Rubin cutout).
The step is batched: one ONNX Runtime call per survey classifies every new object of a
pipeline batch.  It runs inline in both drivers (embedded runner and Kafka worker): at
a few milliseconds per alert it does not need its own agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.registry import ModelRegistry
from ml.stamp_classifier import NAME
from ml.stamp_classifier.lsst import CutoutError, metadata_record, rubin_cutouts
from ml.stamp_classifier.preprocess import CUTOUT_KINDS, STAMP_SIZE, centre_crop
from ml.stamp_classifier.runtime import StampModel
from nightjar.core.lightcurve import ObjectHistory, ObjectState
from nightjar.core.stamps import StampError, cutout_image, gunzip_fits
from nightjar.surveys.interface import LSST, ParsedAlert


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
    """Whether the store already holds the object's stamp classification (rows of every
    survey's model are named ``stamp_classifier``)."""
    prefix = f"{history.oid}:{NAME}:"
    return any(str(_id).startswith(prefix)
               for _id in history.attached_ids.get("probabilities", ()))


@dataclass(frozen=True)
class StampInput:
    """The alert a stamp classification uses."""

    oid: str
    candid: int
    #: raw planes: ZTF (3, 63, 63) cutouts; LSST (4, 30, 30) cutouts and the
    #: difference's variance
    images: np.ndarray
    #: the model's metadata record (ZTF ``candidate``; LSST ``diaSource`` with the seeing
    #: and the number of earlier detections)
    candidate: dict[str, Any]


def stamp_input(alert: ParsedAlert) -> StampInput | None:
    """What the alert's survey's stamp classifier needs of it; None when a cutout is
    missing or unreadable."""
    if alert.survey == LSST:
        try:
            cut = rubin_cutouts(alert.cutouts)
        except CutoutError:
            return None
        return StampInput(alert.oid, alert.candid, cut.images, metadata_record(
            alert.candidate, cut.seeing, len(alert.prv_detections)))
    images = cutout_triplet(alert.cutouts)
    if images is None:
        return None
    return StampInput(alert.oid, alert.candid, images, alert.candidate)


def first_classifiable(alerts: Sequence[ParsedAlert]) -> StampInput | None:
    """The earliest alert (by ``mjd``, then candid) of one object with usable cutouts."""
    for alert in sorted(alerts, key=lambda a: (a.mjd, a.candid)):
        chosen = stamp_input(alert)
        if chosen is not None:
            return chosen
    return None


class StampClassifierHook:
    """The *stamp* step's hook: classify the first alert of objects never classified.

    Takes one model per survey (each model knows its survey); an object of a survey
    without a model is left alone.  Called with all objects of a batch at once (one ONNX
    Runtime run per survey); returns them with the rows added to ``probabilities``.
    """

    def __init__(self, *models: StampModel):
        self.models: dict[str, StampModel] = {}
        for model in models:
            if model.survey in self.models:
                raise ValueError(f"two stamp classifiers for {model.survey}: "
                                 f"{self.models[model.survey].name} and {model.name}")
            self.models[model.survey] = model

    def __call__(self, states: Sequence[ObjectState]) -> list[ObjectState]:
        todo: dict[str, list[tuple[int, StampInput]]] = {}
        for i, state in enumerate(states):
            model = self.models.get(state.survey)
            if model is None or has_stamp_classification(state.history):
                continue
            chosen = first_classifiable(state.alerts)
            if chosen is not None:
                todo.setdefault(state.survey, []).append((i, chosen))
        out = list(states)
        for survey, batch in todo.items():
            model = self.models[survey]
            probabilities = model.predict([t.images for _, t in batch],
                                          [t.candidate for _, t in batch])
            for (i, chosen), probs in zip(batch, probabilities, strict=True):
                state = out[i]
                out[i] = replace(state, probabilities=[*state.probabilities,
                                                       *model.rows(probs, chosen.candid)])
        return out


def load_stamp_model(home: Path, version: str | None = None, name: str = NAME
                     ) -> StampModel:
    """The registered stamp classifier ``name`` (newest, or the pinned version)."""
    registered = ModelRegistry.default(home).get(name, version)
    return StampModel.load(registered.path)
