"""The built-in lung-nodule model behind the predictor interface.

predict(series):
1. resample the CT (HU) to the isotropic working grid (candidates.SPACING_MM);
2. find candidates (candidates.find_candidates: blobs inside the lungs);
3. cut a 24^3 patch around each, lung window (-1000..400 HU) scaled to 0..1,
   and score it with the CNN (network.NoduleNet), probability = sigmoid;
4. keep those at or above the threshold, drop any whose centre lies inside a
   higher-scoring proposal's radius, at most MAX_PROPOSALS;
5. each becomes a "nodule" proposal in the readers' finding model: an ellipse
   (bounding-box corners, pixel coordinates) on the slice nearest its centre,
   `centre_mm` in patient space, and the attributes the lung schema asks:
   `long_axis_mm` (equivalent-sphere diameter of the region above -750 HU
   around the centre) and `nodule_type` (solid / part_solid / ground_glass
   from the HU of its core and rim).
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
from ..preprocess import apply_window, resample
from . import candidates as cand

NAME = "lung-nodule"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
WEIGHTS = WEIGHTS_DIR / "lung_nodule.pt"
CARD = WEIGHTS_DIR / "lung_nodule.card.json"
PATCH = 24
PATCH_WINDOW = (-300.0, 1400.0)  # (centre, width): -1150..550 HU -> 0..1
DEFAULT_THRESHOLD = 0.5
MAX_PROPOSALS = 50
BATCH = 256


def load_card(path: str | Path = CARD) -> ModelCard:
    return ModelCard.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Prepared:
    """What the network is given for one series, and how to map it back."""

    working: np.ndarray  # HU on the working grid
    candidates: list[cand.Candidate]
    patches: np.ndarray  # (n, 1, PATCH, PATCH, PATCH) float32, 0..1
    scale: tuple[float, float, float]  # series voxels per working voxel, per axis


def extract_patches(working: np.ndarray, centres: list[tuple[int, int, int]]) -> np.ndarray:
    """Patches (n, 1, PATCH^3) around `centres` (working-grid indices), windowed."""
    half = PATCH // 2
    padded = np.pad(working, half, mode="constant", constant_values=-1024.0)
    out = np.empty((len(centres), 1, PATCH, PATCH, PATCH), dtype=np.float32)
    for i, (z, y, x) in enumerate(centres):
        out[i, 0] = padded[z : z + PATCH, y : y + PATCH, x : x + PATCH]
    return apply_window(out, PATCH_WINDOW)


def prepare(series: SeriesVolume) -> Prepared:
    target = (cand.SPACING_MM,) * 3
    working = resample(series.pixels, series.spacing, target)
    found = cand.find_candidates(working)
    patches = extract_patches(working, [c.index for c in found])
    scale = tuple(n / m for n, m in zip(series.shape, working.shape, strict=True))
    return Prepared(working, found, patches, scale)  # type: ignore[arg-type]


def measure(working: np.ndarray, index: tuple[int, int, int], radius_mm: float) -> dict[str, Any]:
    """`long_axis_mm` and `nodule_type` of the blob at `index` (working grid)."""
    from scipy import ndimage as ndi

    s = cand.SPACING_MM
    reach = int(np.ceil(min(2.0 * radius_mm, 16.0) / s)) + 1
    box = tuple(
        slice(max(0, c - reach), min(n, c + reach + 1))
        for c, n in zip(index, working.shape, strict=True)
    )
    sub = working[box]
    c = tuple(i - b.start for i, b in zip(index, box, strict=True))
    zz, yy, xx = np.indices(sub.shape)
    dist = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) * s
    labels, _ = ndi.label((sub > -750.0) & (dist <= reach * s))
    own = labels[c] if labels[c] else 0
    volume = float((labels == own).sum()) * s**3 if own else 0.0
    diameter = (6.0 * volume / np.pi) ** (1.0 / 3.0) if volume else 2.0 * radius_mm
    diameter = float(min(diameter, 2.0 * reach * s))
    r = diameter / 2.0
    core = float(sub[dist <= max(s, 0.25 * r)].mean())
    rim_sel = (dist >= 0.6 * r) & (dist <= 0.85 * r)
    rim = float(sub[rim_sel].mean()) if rim_sel.any() else core
    if core <= -300.0:
        kind = "ground_glass"
    elif rim <= -300.0:
        kind = "part_solid"
    else:
        kind = "solid"
    return {"long_axis_mm": round(diameter, 1), "nodule_type": kind}


class LungNodulePredictor:
    """Candidates + CNN classifier; see the module docstring."""

    def __init__(
        self,
        weights: str | Path = WEIGHTS,
        card: ModelCard | None = None,
        device: str | None = None,
    ):
        import torch

        from .network import NoduleNet

        self.weights, self.card, self.sha256 = checked_weights(weights, card, load_card)
        self.device = select_device(device)
        self.net = NoduleNet()
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.to(self.device).eval()

    def score(self, patches: np.ndarray) -> np.ndarray:
        """Nodule probability of each patch (the plain forward pass, batched)."""
        import torch

        out = np.empty(len(patches), dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(patches), BATCH):
                x = torch.from_numpy(patches[i : i + BATCH]).to(self.device)
                out[i : i + BATCH] = torch.sigmoid(self.net(x)).cpu().numpy()
        return out

    def predict(self, series: SeriesVolume, *, threshold: float | None = None) -> Prediction:
        if series.modality.upper() != "CT":
            raise ValueError(f"{NAME} reads CT, not {series.modality}")
        t = (
            float(self.card.default_threshold or DEFAULT_THRESHOLD)
            if threshold is None
            else threshold
        )
        prep = prepare(series)
        scores = self.score(prep.patches) if len(prep.candidates) else np.zeros(0)
        return Prediction(
            model=self.card.name,
            version=self.card.version,
            weights_sha256=self.sha256,
            threshold=t,
            proposals=tuple(self.proposals(series, prep, scores, t)),
        )

    def proposals(
        self, series: SeriesVolume, prep: Prepared, scores: np.ndarray, threshold: float
    ) -> list[Proposal]:
        s = cand.SPACING_MM
        kept: list[tuple[np.ndarray, float]] = []
        out: list[Proposal] = []
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] < threshold or len(out) >= MAX_PROPOSALS:
                break
            c = prep.candidates[int(i)]
            at = np.asarray(c.index, dtype=float) * s
            if any(np.linalg.norm(at - p) < r for p, r in kept):
                continue
            attrs = measure(prep.working, c.index, c.radius_mm)
            radius = attrs["long_axis_mm"] / 2.0
            kept.append((at, max(radius, 3.0)))
            # working voxel i samples the series at (i + 0.5) * scale - 0.5
            z, row, col = ((v + 0.5) * k - 0.5 for v, k in zip(c.index, prep.scale, strict=True))
            rr = radius / series.spacing[1]
            rc = radius / series.spacing[2]
            geometry = {
                "kind": "ellipse",
                "shapes": [
                    {
                        "slice_index": int(min(max(round(z), 0), series.shape[0] - 1)),
                        "points": [
                            [round(col - rc, 2), round(row - rr, 2)],
                            [round(col + rc, 2), round(row + rr, 2)],
                        ],
                    }
                ],
                "centre_mm": list(series.index_to_mm(z, row, col)),
            }
            out.append(Proposal("nodule", geometry, round(float(scores[i]), 4), attrs))
        return out
