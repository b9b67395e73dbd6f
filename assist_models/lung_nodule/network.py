"""The candidate classifier: a compact 3D CNN on 24^3 patches (1.4 mm voxels).

Three conv + ReLU + max-pool stages (8, 16, 32 channels), then two linear
layers to one logit: "this candidate is a nodule". About 46 k parameters
(some 190 kB of float32 weights).
"""

from __future__ import annotations

import torch
from torch import nn

PATCH = 24


class NoduleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * (PATCH // 8) ** 3, 32),
            nn.ReLU(),
            nn.Linear(32, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))[:, 0]
