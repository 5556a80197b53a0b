"""The stamp classifier's network (torch; training only — the live path runs its ONNX export).

A rotation-invariant CNN after Carrasco-Davis et al. 2021 (their fig. 4): one
convolutional tower sees the (3, 21, 21) input in its four 90-degree rotations, the
tower's dense features are averaged over the rotations (cyclic pooling), the
standardised alert metadata are concatenated, and two dense layers lead to a 5-class
softmax.  Rotations are written with ``transpose``/``flip`` (``torch.rot90`` has no ONNX
export), so the exported graph contains only standard operators.
"""

from __future__ import annotations

import torch
from torch import nn


def rotations(x: torch.Tensor) -> torch.Tensor:
    """The four 90-degree rotations of a (n, c, h, w) batch, stacked as (4n, c, h, w)."""
    return torch.cat([x, x.transpose(2, 3).flip(2), x.flip(2).flip(3),
                      x.transpose(2, 3).flip(3)], dim=0)


class StampNet(nn.Module):
    """(stamps (n, channels, crop, crop), metadata (n, m)) -> class logits (n, k).

    Parameters
    ----------
    n_metadata : int
        Number of metadata features.
    n_classes : int
    crop : int
        Side of the (square) input [pixels]; two 2x2 poolings follow the convolutions.
    width : int
        Filters of the first two convolutions (twice that for the next two).
    dense : int
        Units of the dense layers.
    dropout : float
        Dropout before the last two dense layers (training only).
    channels : int
        Image planes (ZTF: science, template, difference; LSST adds the difference's
        significance from its variance plane).
    """

    def __init__(self, n_metadata: int, n_classes: int = 5, crop: int = 21, width: int = 16,
                 dense: int = 64, dropout: float = 0.3, channels: int = 3):
        super().__init__()
        self.tower = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (crop // 4) ** 2, dense), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(dense + n_metadata, dense), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(dense, dense), nn.ReLU(),
            nn.Linear(dense, n_classes),
        )

    def logits(self, stamps: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        n = stamps.shape[0]
        features = self.tower(rotations(stamps))
        pooled = features.reshape(4, n, features.shape[1]).mean(dim=0)  # cyclic pooling
        return self.head(torch.cat([pooled, metadata], dim=1))

    def forward(self, stamps: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(stamps, metadata), dim=1)
