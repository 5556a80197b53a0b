"""Training the stamp classifier (torch), exporting it to ONNX and registering it.

Needs the ``train`` dependency group (torch, onnx); nothing in the live pipeline imports
this module.  Training is deterministic for a seed on a given machine: seeded torch and
numpy generators, deterministic algorithms, a fixed number of threads, no data-loader
workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.registry import library_versions as registry_library_versions
from ml.stamp_classifier import CLASSES
from ml.stamp_classifier.dataset import StampSet, stratified_split
from ml.stamp_classifier.evaluate import evaluate
from ml.stamp_classifier.flavours import ZTF_STAMPS, StampFlavour
from ml.stamp_classifier.network import StampNet
from ml.stamp_classifier.preprocess import CROP, MetadataScaler
from ml.stamp_classifier.runtime import (
    CARD_FILE,
    INPUT_METADATA,
    INPUT_STAMPS,
    ONNX_FILE,
    OUTPUT,
    StampModel,
)

TRAIN_THREADS = 2  #: fixed, so that a seed gives the same model on a machine


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters (the defaults are what the shipped model used)."""

    epochs: int = 14
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    dense: int = 64
    dropout: float = 0.3
    #: share of the training signal carried by the real alerts (the rest: simulations)
    real_share: float = 0.3
    crop: int = CROP

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def library_versions() -> dict[str, str]:
    return registry_library_versions(("torch", "onnx", "onnxruntime", "numpy", "astropy"))


def _deterministic(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(TRAIN_THREADS)
    return torch.Generator().manual_seed(seed)


def _weights(data: StampSet, real_share: float) -> np.ndarray:
    """Per-example weights: classes balanced within the real and the simulated parts, the
    real part carrying ``real_share`` of the total (all of it when there are no sims)."""
    weights = np.zeros(len(data))
    real = np.array([s == "real" for s in data.sources])
    parts = [(real, real_share if (~real).any() else 1.0),
             (~real, 1.0 - real_share if real.any() else 1.0)]
    for mask, share in parts:
        if not mask.any():
            continue
        labels = data.labels[mask]
        classes, counts = np.unique(labels, return_counts=True)
        per_class = {c: 1.0 / (len(classes) * n) for c, n in zip(classes, counts, strict=True)}
        weights[mask] = share * np.array([per_class[c] for c in labels])
    return weights * len(data) / weights.sum()


def _augment(stamps: torch.Tensor, metadata: torch.Tensor, real: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror images at random (rotations are built in); real alerts, few and reused
    every epoch, also get pixel noise and a metadata jitter."""
    flip = torch.rand(stamps.shape[0], generator=generator) < 0.5
    stamps = torch.where(flip[:, None, None, None], stamps.flip(3), stamps)
    noise = torch.randn(stamps.shape, generator=generator) * 0.03
    stamps = stamps + noise * real[:, None, None, None]
    jitter = torch.randn(metadata.shape, generator=generator) * 0.1
    return stamps, metadata + jitter * real[:, None]


def fit(data: StampSet, config: TrainConfig, seed: int, progress: Any = None,
        flavour: StampFlavour = ZTF_STAMPS) -> tuple[StampNet, MetadataScaler]:
    """Train a :class:`StampNet` on ``data``; returns it (in eval mode) and the scaler."""
    generator = _deterministic(seed)
    stamps = torch.from_numpy(np.stack([flavour.tensor(img, config.crop)
                                        for img in data.images]))
    raw = flavour.raw_metadata(data.candidates)
    scaler = MetadataScaler.fit(raw)
    metadata = torch.from_numpy(scaler.transform(raw))
    target = torch.tensor([CLASSES.index(c) for c in data.labels])
    weight = torch.from_numpy(_weights(data, config.real_share)).float()
    real = torch.tensor([s == "real" for s in data.sources]).float()
    net = StampNet(len(flavour.features), len(CLASSES), config.crop, config.width,
                   config.dense, config.dropout, flavour.channels)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(data) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate,
                                                   total_steps=max(steps, 1))
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    net.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(data), generator=generator)
        total = 0.0
        for start in range(0, len(data), config.batch_size):
            idx = order[start:start + config.batch_size]
            x, m = _augment(stamps[idx], metadata[idx], real[idx], generator)
            loss = (loss_fn(net.logits(x, m), target[idx]) * weight[idx]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        if progress:
            progress(epoch + 1, config.epochs, total / len(data))
    net.eval()
    return net, scaler


def export_onnx(net: StampNet, crop: int, flavour: StampFlavour = ZTF_STAMPS) -> bytes:
    """The network as ONNX bytes (opset 17), batch size dynamic, softmax output."""
    stamps = torch.zeros(2, flavour.channels, crop, crop)
    metadata = torch.zeros(2, len(flavour.features))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of torch.export, which needs
        # onnxscript; this graph is plain convolutions and is exported exactly either way
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (stamps, metadata), buf,  # type: ignore[arg-type]
                          input_names=[INPUT_STAMPS,
                          INPUT_METADATA], output_names=[OUTPUT], opset_version=17,
                          dynamic_axes={INPUT_STAMPS: {0: "n"}, INPUT_METADATA: {0: "n"},
                                        OUTPUT: {0: "n"}}, dynamo=False)
    return buf.getvalue()


def torch_probabilities(net: StampNet, stamps: np.ndarray, metadata: np.ndarray
                        ) -> np.ndarray:
    """The torch model's probabilities (to compare with the ONNX export)."""
    with torch.no_grad():
        return net(torch.from_numpy(stamps), torch.from_numpy(metadata)).numpy()


def train_and_register(real: StampSet, out_dir: Path, version: str, *, seed: int = 0,
                       holdout: float = 0.4, simulated_per_class: int = 2000,
                       config: TrainConfig | None = None, training_data: str = "",
                       progress: Any = None, flavour: StampFlavour = ZTF_STAMPS
                       ) -> tuple[StampModel, dict[str, Any]]:
    """Train on simulations plus the real labelled alerts minus a held-out part, export,
    write ``model.onnx`` and ``model.json`` into ``out_dir`` and evaluate the exported
    model on the held-out real alerts (and on fresh simulations, for reference).

    Returns the loaded model and its metrics ({"real_held_out": ..., "simulated": ...}).
    """
    config = config or TrainConfig(crop=flavour.crop)
    started = time.time()
    train_idx, test_idx = stratified_split(real.labels, real.oids, holdout, seed) \
        if len(real) else (np.arange(0), np.arange(0))
    parts = [real.subset(train_idx)] if len(train_idx) else []
    if simulated_per_class > 0:
        images, candidates, labels = flavour.simulate(simulated_per_class, seed)
        parts.append(StampSet(images, candidates, labels, [f"sim{i}" for i in range(len(labels))],
                              [None] * len(labels), ["simulated"] * len(labels)))
    if not parts:
        raise ValueError("nothing to train on: no real labelled alerts and no simulations")
    data = StampSet.concat(parts)
    net, scaler = fit(data, config, seed, progress, flavour)
    onnx_bytes = export_onnx(net, config.crop, flavour)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ONNX_FILE).write_bytes(onnx_bytes)
    held_out = real.subset(test_idx)
    card: dict[str, Any] = {
        "name": flavour.name, "survey": flavour.survey, "version": version,
        "format": "onnx", "opset": 17, "created": time.strftime("%Y-%m-%d", time.gmtime()),
        "classes": list(CLASSES), "crop": config.crop,
        "metadata": scaler.to_json(flavour.features),
        "inputs": {INPUT_STAMPS: ["n", flavour.channels, config.crop, config.crop],
                   INPUT_METADATA: ["n", len(flavour.features)]}, "output": OUTPUT,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "seed": seed, "config": config.as_dict(), "libraries": library_versions(),
        "training_data": training_data,
        "n_train": {"real": len(train_idx), "simulated": int(len(data) - len(train_idx)),
                    "real_by_class": real.subset(train_idx).counts() if len(train_idx) else {}},
        "held_out": {"oids": sorted(set(held_out.oids)), "by_class": held_out.counts()
                     if len(held_out) else {}},
        "train_seconds": round(time.time() - started, 1),
    }
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    model = StampModel.load(out_dir)
    metrics: dict[str, Any] = {}
    if len(held_out):
        metrics["real_held_out"] = evaluate(model, held_out)
    images, candidates, labels = flavour.simulate(max(simulated_per_class // 10, 20), seed + 1)
    metrics["simulated"] = evaluate(model, StampSet(
        images, candidates, labels, [f"sim{i}" for i in range(len(labels))],
        [None] * len(labels), ["simulated"] * len(labels)))
    card["metrics"] = metrics
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return StampModel.load(out_dir), metrics
