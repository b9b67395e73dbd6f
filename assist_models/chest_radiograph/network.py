"""The chest radiograph network: one compact 2D CNN with two heads.

Input: (batch, 1, 256, 256), display values scaled to 0..1. A strided stem
and three conv + batch-norm + ReLU stages give features at 1/8 (32 x 32) and
1/16 of the input; a last stage at 1/32 sees the whole chest.

- quality head (from the 1/32 features, flattened so the layout counts:
  a tilted spine, a cut-off lung): one logit per quality class;
- finding head (1/8 features with the 1/16 ones upsampled), CenterNet-style,
  per finding type: a centre heat map (logit per cell), the centre's offset
  within the cell (2) and the box's log size in cells (2).

About 166 k parameters (some 0.7 MB of float32 weights).
"""

from __future__ import annotations

import torch
from torch import nn

INPUT = 256
STRIDE = 8
GRID = INPUT // STRIDE


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class ChestNet(nn.Module):
    def __init__(self, quality: int = 3, findings: int = 3) -> None:
        super().__init__()
        self.findings = findings
        self.s4 = nn.Sequential(_block(1, 12, 2), _block(12, 16, 2), _block(16, 32))
        self.s8 = nn.Sequential(nn.MaxPool2d(2), _block(32, 48), _block(48, 48))
        self.s16 = nn.Sequential(nn.MaxPool2d(2), _block(48, 64), _block(64, 64))
        self.s32 = nn.Sequential(nn.MaxPool2d(2), _block(64, 64))
        self.detect = nn.Sequential(
            nn.Conv2d(48 + 64, 48, 1), nn.ReLU(), nn.Conv2d(48, findings * 5, 1)
        )
        self.quality = nn.Sequential(
            nn.Conv2d(64, 8, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * (INPUT // 32) ** 2, 32),
            nn.ReLU(),
            nn.Linear(32, quality),
        )
        with torch.no_grad():  # CenterNet's prior: heat maps start near 0.1% per cell
            self.detect[-1].bias[:findings].fill_(-4.6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(quality logits (B, Q), finding maps (B, 5F, GRID, GRID)): channels
        [0, F) heat logits, then (row, col) offsets per type, then (log h, log w)."""
        a = self.s4(x)
        b = self.s8(a)
        c = self.s16(b)
        d = self.s32(c)
        up = nn.functional.interpolate(c, scale_factor=2, mode="nearest")
        return self.quality(d), self.detect(torch.cat([b, up], 1))
