"""The stamp classifier at run time: its ONNX export on ONNX Runtime, no torch.

A registered model folder holds ``model.onnx`` and ``model.json`` (the card: classes,
crop, metadata standardisation, training data, metrics).  :class:`StampModel` turns
cutouts and alert metadata into probabilities and ALeRCE-shaped probability rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.probabilities import ranked_rows
from ml.stamp_classifier import CLASSES, NAME
from ml.stamp_classifier.flavours import flavour_of
from ml.stamp_classifier.preprocess import MetadataScaler

ONNX_FILE = "model.onnx"
CARD_FILE = "model.json"
INPUT_STAMPS = "stamps"
INPUT_METADATA = "metadata"
OUTPUT = "probabilities"


class ModelFileError(ValueError):
    """A model folder whose files are missing, altered or inconsistent."""


@dataclass
class StampModel:
    """A loaded stamp classifier.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    card : dict
        The model's ``model.json``.
    """

    session: Any
    card: dict[str, Any]

    def __post_init__(self) -> None:
        self.flavour = flavour_of(self.card)
        self.name: str = self.card.get("name", self.flavour.name)
        self.survey: str = self.flavour.survey
        self.version: str = self.card["version"]
        self.classes: tuple[str, ...] = tuple(self.card["classes"])
        self.crop: int = int(self.card["crop"])
        self.scaler = MetadataScaler.from_json(self.card["metadata"], self.flavour.features)

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> StampModel:
        """Load ``model.onnx`` and ``model.json`` from a model folder.

        ``threads`` bounds ONNX Runtime's intra-op threads: the live pipeline shares its
        cores with the rest of the worker, and batches are small.
        """
        import onnxruntime as ort

        card_path, onnx_path = path / CARD_FILE, path / ONNX_FILE
        if not card_path.exists() or not onnx_path.exists():
            raise ModelFileError(f"{path}: needs {CARD_FILE} and {ONNX_FILE}")
        card = json.loads(card_path.read_text())
        data = onnx_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if card.get("onnx_sha256") not in (None, digest):
            raise ModelFileError(f"{onnx_path}: sha256 {digest} differs from the card's "
                                 f"{card['onnx_sha256']} (file altered or mixed versions)")
        if tuple(card.get("classes", ())) != CLASSES:
            raise ModelFileError(f"{path}: classes {card.get('classes')} are not {CLASSES}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return cls(session, card)

    def inputs(self, cutouts: Sequence[np.ndarray], candidates: Sequence[Mapping[str, Any]]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Network inputs from raw cutout planes ((k, h, w) arrays: science, template,
        difference, and for LSST the difference's variance) and metadata records (ZTF
        ``candidate``; LSST ``diaSource`` with seeing and earlier detections)."""
        channels = self.flavour.channels
        stamps = np.zeros((len(cutouts), channels, self.crop, self.crop), np.float32)
        for i, planes in enumerate(cutouts):
            stamps[i] = self.flavour.tensor(planes, self.crop)
        return stamps, self.scaler.transform(self.flavour.raw_metadata(candidates))

    def predict_inputs(self, stamps: np.ndarray, metadata: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) from prepared inputs (:meth:`inputs`)."""
        if len(stamps) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = self.session.run([OUTPUT], {INPUT_STAMPS: stamps.astype(np.float32),
                                          INPUT_METADATA: metadata.astype(np.float32)})
        return np.asarray(out[0])

    def predict(self, cutouts: Sequence[np.ndarray],
                candidates: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probabilities (n, classes) of alerts, one batched run."""
        return self.predict_inputs(*self.inputs(cutouts, candidates))

    def rows(self, probabilities: np.ndarray, candid: int | None = None
             ) -> list[dict[str, Any]]:
        """ALeRCE-shaped rows of one alert (classifier, version, class, probability,
        ranking 1 = most probable), with the candid the classification used.  Every
        survey's model writes rows named ``stamp_classifier``: one API for both."""
        rows = ranked_rows(NAME, self.version, self.classes, probabilities)
        if candid is not None:
            for row in rows:
                row["candid"] = candid
        return rows
