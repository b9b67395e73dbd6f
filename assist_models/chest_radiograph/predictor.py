"""The built-in chest radiograph model behind the predictor interface.

predict(series) for a one-image DX / CR series:
1. display values: the stored values as given (modality values after rescale),
   turned over (4095 - value) when the image reads as MONOCHROME1, i.e. when
   the band along its border (air around the patient, dark on a display) is
   brighter than the image's median; then windowed 0..4095 -> 0..1;
2. padded to a square with its border level and resized to 256 x 256;
3. one forward pass of network.ChestNet: probabilities (sigmoid) of the
   quality classes and, per finding type, a heat map of finding centres with
   the box size at each;
4. `case_probabilities`: every class of CLASSES, a finding's being its
   highest centre probability;
5. proposals: per finding type, the heat map's local maxima at or above the
   threshold (at most MAX_PER_TYPE, none overlapping a higher one by more than
   NMS_IOU), each a "box" in the readers' finding model: its corners in this
   image's pixel coordinates on slice 0, `centre_mm` through the series'
   geometry, and the schema's `confidence` grade (3 from probability 0.9,
   2 from 0.7, else 1; readers change it as they see fit).

Finding types and their geometry follow the chest radiograph label schema
(annotation_server/projects/label_schemas/chest_radiograph.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..builtin import checked_weights
from ..device import select_device
from ..interface import ModelCard, Prediction, Proposal, SeriesVolume
from ..preprocess import apply_window
from .network import GRID, INPUT, STRIDE
from .synthetic import FINDINGS, MAX_VALUE

NAME = "chest-radiograph"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
WEIGHTS = WEIGHTS_DIR / "chest_radiograph.pt"
CARD = WEIGHTS_DIR / "chest_radiograph.card.json"
QUALITY = ("under_exposed", "over_exposed", "mispositioned")
CLASSES = QUALITY + FINDINGS
WINDOW = (2048.0, 4096.0)  # (centre, width): display 0..4096 -> 0..1
MODALITIES = ("CR", "DX")
DEFAULT_THRESHOLD = 0.5
MAX_PER_TYPE = 2
NMS_IOU = 0.3
BORDER = 0.04  # the border band's width, a fraction of each side


def load_card(path: str | Path = CARD) -> ModelCard:
    return ModelCard.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Prepared:
    """The network's input for one radiograph, and how to map it back."""

    image: np.ndarray  # (1, INPUT, INPUT) float32, 0..1
    inverted: bool  # read as MONOCHROME1 and turned over
    pad: tuple[int, int]  # (rows above, columns left) added to make it square
    scale: float  # source pixels per working pixel

    def to_working(self, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        """A source box (x_min, y_min, x_max, y_max, inclusive pixels) as
        (centre row, centre col, height, width) in working pixels."""
        x0, y0, x1, y1 = box
        top, left = self.pad
        # pixel i spans [i, i + 1) along the edges; its centre is at i + 0.5
        r0, r1 = (y0 + top) / self.scale, (y1 + 1 + top) / self.scale
        c0, c1 = (x0 + left) / self.scale, (x1 + 1 + left) / self.scale
        return ((r0 + r1) / 2 - 0.5, (c0 + c1) / 2 - 0.5, r1 - r0, c1 - c0)

    def to_source(
        self, row: float, col: float, height: float, width: float
    ) -> tuple[float, float, float, float]:
        """`to_working`'s inverse: (x_min, y_min, x_max, y_max) in source pixels."""
        top, left = self.pad
        r = (row + 0.5) * self.scale - 0.5 - top
        c = (col + 0.5) * self.scale - 0.5 - left
        h, w = height * self.scale, width * self.scale
        return (c - w / 2 + 0.5, r - h / 2 + 0.5, c + w / 2 - 0.5, r + h / 2 - 0.5)


def display_values(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(display values, whether they were turned over): see step 1 above."""
    img = np.asarray(image, dtype=np.float32)
    rows, cols = img.shape
    br, bc = max(1, int(rows * BORDER)), max(1, int(cols * BORDER))
    band = np.concatenate(
        [img[:br].ravel(), img[-br:].ravel(), img[:, :bc].ravel(), img[:, -bc:].ravel()]
    )
    inverted = bool(np.median(band) > np.median(img))
    return (np.float32(MAX_VALUE) - img if inverted else img), inverted


def prepare(series: SeriesVolume) -> Prepared:
    import torch
    import torch.nn.functional as F

    if series.shape[0] != 1:
        raise ValueError(f"{NAME} reads one radiograph; this series has {series.shape[0]} images")
    display, inverted = display_values(series.pixels[0])
    rows, cols = display.shape
    side = max(rows, cols)
    top, left = (side - rows) // 2, (side - cols) // 2
    if side != rows or side != cols:
        level = float(np.median(np.concatenate([display[0], display[-1]])))
        square = np.full((side, side), level, dtype=np.float32)
        square[top : top + rows, left : left + cols] = display
        display = square
    t = torch.from_numpy(apply_window(display, WINDOW))[None, None]
    with torch.no_grad():
        if side >= INPUT:
            t = F.adaptive_avg_pool2d(t, INPUT)
        else:
            t = F.interpolate(t, size=(INPUT, INPUT), mode="bilinear", align_corners=False)
    return Prepared(t[0].numpy(), inverted, (top, left), side / INPUT)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return 0.0
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(w * h / (area - w * h))


def grade(probability: float) -> int:
    """The label schema's `confidence` grade (1 possible, 2 probable, 3 definite)."""
    return 3 if probability >= 0.9 else 2 if probability >= 0.7 else 1


def decode(maps: np.ndarray) -> tuple[np.ndarray, list[list[tuple[float, tuple[float, ...]]]]]:
    """From one image's finding maps (5F, GRID, GRID): each type's highest
    centre probability and its candidate boxes, (probability, (row, col,
    height, width) in working pixels) at every local maximum, best first."""
    n = len(FINDINGS)
    heat = 1.0 / (1.0 + np.exp(-maps[:n].astype(np.float64)))
    out: list[list[tuple[float, tuple[float, ...]]]] = []
    for k in range(n):
        h = heat[k]
        padded = np.pad(h, 1, constant_values=-1.0)
        peak = np.ones_like(h, dtype=bool)
        for dr in (0, 1, 2):
            for dc in (0, 1, 2):
                peak &= h >= padded[dr : dr + GRID, dc : dc + GRID]
        cells = np.argwhere(peak)
        order = np.argsort(-h[peak], kind="stable")
        found = []
        for i in order[: 4 * MAX_PER_TYPE]:
            r, c = (int(v) for v in cells[i])
            dr, dc = maps[n + 2 * k : n + 2 * k + 2, r, c]
            lh, lw = maps[3 * n + 2 * k : 3 * n + 2 * k + 2, r, c]
            row = (r + float(dr)) * STRIDE + (STRIDE - 1) / 2
            col = (c + float(dc)) * STRIDE + (STRIDE - 1) / 2
            size = np.exp(np.clip([lh, lw], -3.0, 4.0)) * STRIDE
            found.append((float(h[r, c]), (row, col, float(size[0]), float(size[1]))))
        out.append(found)
    return heat.reshape(n, -1).max(axis=1), out


class ChestRadiographPredictor:
    """Quality and finding classifier with boxes; see the module docstring."""

    def __init__(
        self,
        weights: str | Path = WEIGHTS,
        card: ModelCard | None = None,
        device: str | None = None,
    ):
        import torch

        from .network import ChestNet

        self.weights, self.card, self.sha256 = checked_weights(weights, card, load_card)
        self.device = select_device(device)
        self.net = ChestNet(len(QUALITY), len(FINDINGS))
        self.net.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
        self.net.to(self.device).eval()

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(quality probabilities (B, Q), finding maps (B, 5F, GRID, GRID)) of
        prepared images (B, 1, INPUT, INPUT): the plain forward pass."""
        import torch

        with torch.no_grad():
            q, maps = self.net(torch.from_numpy(np.ascontiguousarray(images)).to(self.device))
            return torch.sigmoid(q).cpu().numpy(), maps.cpu().numpy()

    def predict(self, series: SeriesVolume, *, threshold: float | None = None) -> Prediction:
        if series.modality.upper() not in MODALITIES:
            raise ValueError(f"{NAME} reads DX or CR radiographs, not {series.modality}")
        prep = prepare(series)
        quality, maps = self.forward(prep.image[None])
        best, candidates = decode(maps[0])
        probabilities = {
            **{c: round(float(p), 4) for c, p in zip(QUALITY, quality[0], strict=True)},
            **{c: round(float(p), 4) for c, p in zip(FINDINGS, best, strict=True)},
        }
        t = None if threshold is None else float(threshold)
        default = float(self.card.default_threshold or DEFAULT_THRESHOLD)
        proposals: list[Proposal] = []
        for ftype, found in zip(FINDINGS, candidates, strict=True):
            cut = t if t is not None else float(self.card.thresholds.get(ftype, default))
            proposals += self.proposals(series, prep, ftype, found, cut)
        return Prediction(
            model=self.card.name,
            version=self.card.version,
            weights_sha256=self.sha256,
            threshold=t if t is not None else default,
            proposals=tuple(proposals),
            case_probabilities=probabilities,
        )

    def proposals(
        self,
        series: SeriesVolume,
        prep: Prepared,
        ftype: str,
        found: list[tuple[float, tuple[float, ...]]],
        threshold: float,
    ) -> list[Proposal]:
        rows, cols = series.shape[1], series.shape[2]
        kept: list[tuple[float, ...]] = []
        out: list[Proposal] = []
        for probability, working in found:
            if probability < threshold or len(out) >= MAX_PER_TYPE:
                break
            x0, y0, x1, y1 = prep.to_source(*working)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2  # at least a pixel wide and high
            x0, x1 = min(x0, cx - 0.5), max(x1, cx + 0.5)
            y0, y1 = min(y0, cy - 0.5), max(y1, cy + 0.5)
            box = (
                round(min(max(x0, 0.0), cols - 1.0), 1),
                round(min(max(y0, 0.0), rows - 1.0), 1),
                round(min(max(x1, 0.0), cols - 1.0), 1),
                round(min(max(y1, 0.0), rows - 1.0), 1),
            )
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            if any(_iou(box, other) > NMS_IOU for other in kept):
                continue
            kept.append(box)
            centre = series.index_to_mm(0, (box[1] + box[3]) / 2, (box[0] + box[2]) / 2)
            geometry: dict[str, Any] = {
                "kind": "box",
                "shapes": [{"slice_index": 0, "points": [[box[0], box[1]], [box[2], box[3]]]}],
                "centre_mm": list(centre),
            }
            confidence = round(probability, 4)
            out.append(Proposal(ftype, geometry, confidence, {"confidence": grade(probability)}))
        return out
