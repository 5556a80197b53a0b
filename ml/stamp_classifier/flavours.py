"""What one survey's stamp classifier needs that another's does not: its registry name,
crop, image channels, metadata, preprocessing and simulator.

Training (:mod:`.train`) and the runtime (:mod:`.runtime`) take a flavour, so the ZTF
and the LSST models share the network, the training loop, the export and the loader;
a model's card names its survey, and the runtime picks the flavour from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.stamp_classifier import LSST_NAME, NAME
from ml.stamp_classifier.lsst import (
    LSST_CHANNELS,
    LSST_CROP,
    LSST_METADATA_FEATURES,
    lsst_raw_metadata,
    lsst_stamp_tensor,
    simulate_lsst_set,
)
from ml.stamp_classifier.preprocess import CROP, METADATA_FEATURES, raw_metadata, stamp_tensor
from ml.stamp_classifier.simulate import simulate_set

SimulatedSet = tuple[np.ndarray, list[dict[str, Any]], np.ndarray]


@dataclass(frozen=True)
class StampFlavour:
    """One survey's stamp-classifier conventions."""

    name: str  #: registry name of the survey's model
    survey: str  #: "ZTF" or "LSST"
    crop: int  #: side of the network's input [pixels]
    channels: int  #: image planes the network sees
    features: tuple[str, ...]  #: metadata, in order
    #: raw planes (k, h, w) and the crop -> the network's (channels, crop, crop) input
    tensor: Callable[[np.ndarray, int], np.ndarray]
    #: metadata records -> (n, len(features)) raw values
    raw_metadata: Callable[[Sequence[Mapping[str, Any]]], np.ndarray]
    #: (per class, seed) -> simulated (planes, records, labels)
    simulate: Callable[[int, int], SimulatedSet]


def _ztf_tensor(images: np.ndarray, crop: int) -> np.ndarray:
    return stamp_tensor(images[0], images[1], images[2], crop=crop)


ZTF_STAMPS = StampFlavour(NAME, "ZTF", CROP, 3, METADATA_FEATURES, _ztf_tensor,
                          raw_metadata, simulate_set)
LSST_STAMPS = StampFlavour(LSST_NAME, "LSST", LSST_CROP, LSST_CHANNELS,
                           LSST_METADATA_FEATURES, lsst_stamp_tensor, lsst_raw_metadata,
                           simulate_lsst_set)
FLAVOURS = {f.survey: f for f in (ZTF_STAMPS, LSST_STAMPS)}
#: registry name -> flavour
BY_NAME = {f.name: f for f in FLAVOURS.values()}


def flavour_of(card: Mapping[str, Any]) -> StampFlavour:
    """The flavour a model card was trained with (cards before the LSST model: ZTF)."""
    survey = str(card.get("survey", "ZTF"))
    if survey not in FLAVOURS:
        raise ValueError(f"a stamp model for survey {survey!r}: known are {sorted(FLAVOURS)}")
    return FLAVOURS[survey]
