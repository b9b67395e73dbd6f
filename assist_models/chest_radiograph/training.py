"""Training the chest radiograph model on synthetic radiographs, reproducibly.

    .venv/bin/python -m assist_models.chest_radiograph train [--out assist_models/weights]

Data: `images` radiographs from the synthetic generator (synthetic.py over
fixtures/xr.py), seeds TRAIN_SEED_BASE + seed * 100000 + i (held-out
evaluation uses EVAL_SEED_BASE + i: never the same), each prepared exactly as
the predictor prepares its input (polarity, square, 256 x 256).

Targets: the quality classes (under-, over-exposed, mispositioned) as 0/1;
per finding type, CenterNet's: a Gaussian bump on the cell holding the truth
box's centre (sigma from the box's size), and at that cell the centre's
offset within the cell and the box's log size in cells.

Loss: binary cross-entropy on the quality logits; CenterNet's focal loss on
the heat maps, plus binary cross-entropy of each heat map's maximum logit
against "this finding is present" (the case probability the predictor
reports); L1 on offset and log size at the truth cells. Adam with a step
decay at 70%. Deterministic: seeded NumPy and torch generators,
`torch.use_deterministic_algorithms(True)` and one CPU thread, so the same
arguments give the same weights file (same sha256).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..builtin import measured_figures, reproducible_torch, write_card
from ..interface import ModelCard, sha256_of
from .network import GRID, INPUT, STRIDE
from .predictor import CARD, CLASSES, MODALITIES, NAME, QUALITY, WINDOW, Prepared, prepare
from .synthetic import (
    EXPOSURE_P,
    FINDING_P,
    FINDINGS,
    MONOCHROME1_P,
    POSITIONING_P,
    SIZES,
    TruthFinding,
    synthetic_radiograph,
)

VERSION = "1.0.0"
TRAIN_SEED_BASE = 1_000_000
EVAL_SEED_BASE = 9_000_000
INTENDED_USE = (
    "Pre-labeling of PA chest radiographs in RefSet: case-level probabilities of image "
    "quality problems (under-exposure, over-exposure, mispositioning) and of localised "
    "findings (nodule, pneumothorax, pleural effusion), with a box proposal for each "
    "finding found, for readers to accept, edit or reject; a demonstration that the assist "
    "interface works offline on a fresh machine. Not a medical device; never a reference "
    "standard on its own."
)
LIMITATIONS = (
    "Trained and evaluated on synthetic data only (RefSet's radiograph generator, "
    "fixtures/xr.py: a schematic PA chest with ribs, clavicles, spine, heart and branching "
    "lung markings; one round nodule, an apical-lateral pneumothorax rim, a basal effusion "
    "with a meniscus); its figures say nothing about real radiographs. Exposure faults are "
    "the generator's two intensity transforms; positioning faults are in-plane tilt and "
    "off-centring made after rendering: axial rotation (clavicle heads against the spinous "
    "processes), inspiration depth, scapulae and AP/lateral views are not modelled. Expects "
    "12-bit display values (0..4095) of one PA image; MONOCHROME1 is recognised from the "
    "image itself. Finding types other than these three (consolidation, atelectasis, "
    "cardiomegaly) are not detected. A nodule lying within an effusion or a pneumothorax "
    "is often missed. At the default threshold (0.5) the finding calls are conservative "
    "(see the sensitivity and specificity at 0.5 among the figures); a lower threshold "
    "shows more proposals."
)
TRAINING_DATA = (
    "Synthetic PA chest radiographs only, from fixtures/xr.py (render_xr) through "
    "assist_models/chest_radiograph/synthetic.py: {images} images, generator seeds "
    "{first}..{last}; per image each of nodule, pneumothorax and pleural effusion present "
    "with probability {finding_p}, under- or over-exposed with probability {exposure_p} "
    "each, mispositioned (tilted 7-15 degrees or off-centre by 20-28% of the field) with "
    "probability {positioning_p}, matrix {sizes} px over 430 mm, MONOCHROME1 with "
    "probability {mono1_p}. Positives: {counts}. Reproduce: {command}"
)
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0


def targets(prep: Prepared, findings: tuple[TruthFinding, ...]) -> dict[str, np.ndarray]:
    """CenterNet targets for one prepared image (see the module docstring)."""
    n = len(FINDINGS)
    heat = np.zeros((n, GRID, GRID), np.float32)
    has = np.zeros(n, np.float32)
    cell = np.zeros((n, 2), np.int64)
    offset = np.zeros((n, 2), np.float32)
    size = np.zeros((n, 2), np.float32)
    rr, cc = np.mgrid[0:GRID, 0:GRID]
    for f in findings:
        k = FINDINGS.index(f.type)
        row, col, h, w = prep.to_working(f.box)
        # cell j holds working pixels [j * STRIDE, (j + 1) * STRIDE): its centre is
        # at j * STRIDE + (STRIDE - 1) / 2
        cr, ccol = (row - (STRIDE - 1) / 2) / STRIDE, (col - (STRIDE - 1) / 2) / STRIDE
        pr = int(min(max(round(cr), 0), GRID - 1))
        pc = int(min(max(round(ccol), 0), GRID - 1))
        sigma = max(0.8, 0.15 * min(h, w) / STRIDE)
        bump = np.exp(-((rr - pr) ** 2 + (cc - pc) ** 2) / (2 * sigma**2)).astype(np.float32)
        heat[k] = np.maximum(heat[k], bump)
        has[k] = 1.0
        cell[k] = (pr, pc)
        offset[k] = (cr - pr, ccol - pc)
        size[k] = (np.log(max(h, 1.0) / STRIDE), np.log(max(w, 1.0) / STRIDE))
    return {"heat": heat, "has": has, "cell": cell, "offset": offset, "size": size}


def collect(seeds: list[int], *, progress: bool = False) -> dict[str, np.ndarray]:
    """Prepared images (float16) with their labels and targets, for `seeds`."""
    images = np.zeros((len(seeds), 1, INPUT, INPUT), np.float16)
    quality = np.zeros((len(seeds), len(QUALITY)), np.float32)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("heat", "has", "cell", "offset", "size")}
    for i, seed in enumerate(seeds):
        case = synthetic_radiograph(seed)
        prep = prepare(case.series)
        images[i] = prep.image
        labels = case.labels()
        quality[i] = [labels[q] for q in QUALITY]
        for k, v in targets(prep, case.findings).items():
            parts[k].append(v)
        if progress and (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(seeds)} radiographs", flush=True)
    return {"images": images, "quality": quality, **{k: np.stack(v) for k, v in parts.items()}}


def losses(quality_logits, maps, batch: dict[str, Any]):
    """(total, parts) for one batch; see the module docstring."""
    import torch
    import torch.nn.functional as F

    n = len(FINDINGS)
    q_loss = F.binary_cross_entropy_with_logits(quality_logits, batch["quality"])
    logits = maps[:, :n]
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    target = batch["heat"]
    pos = (target >= 1.0 - 1e-6).float()
    pos_loss = -torch.log(p) * (1 - p) ** FOCAL_ALPHA * pos
    neg_loss = -torch.log(1 - p) * p**FOCAL_ALPHA * (1 - target) ** FOCAL_BETA * (1 - pos)
    heat_loss = (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)
    present = F.binary_cross_entropy_with_logits(logits.flatten(2).amax(2), batch["has"])
    has = batch["has"]
    b = torch.arange(maps.shape[0])[:, None].expand(-1, n)
    k = torch.arange(n)[None, :].expand(maps.shape[0], -1)
    r, c = batch["cell"][..., 0], batch["cell"][..., 1]
    off = torch.stack([maps[b, n + 2 * k, r, c], maps[b, n + 2 * k + 1, r, c]], -1)
    size = torch.stack([maps[b, 3 * n + 2 * k, r, c], maps[b, 3 * n + 2 * k + 1, r, c]], -1)
    denom = has.sum().clamp(min=1.0)
    off_loss = ((off - batch["offset"]).abs().sum(-1) * has).sum() / denom
    size_loss = ((size - batch["size"]).abs().sum(-1) * has).sum() / denom
    total = q_loss + heat_loss + 0.5 * present + off_loss + size_loss
    return total, {
        "quality": q_loss.item(),
        "heat": heat_loss.item(),
        "present": present.item(),
        "offset": off_loss.item(),
        "size": size_loss.item(),
    }


def train(
    out_dir: str | Path,
    *,
    seed: int = 0,
    images: int = 1000,
    steps: int = 800,
    batch: int = 16,
    lr: float = 2e-3,
    command: str = "",
    progress: bool = False,
    series: int | None = None,
    **ignored: Any,
) -> dict[str, Any]:
    """Train, write `chest_radiograph.pt` and `chest_radiograph.card.json` into
    `out_dir`; return a summary (paths, sha256, counts, seconds).

    `series` is `images` under the name `manage.py train_assist_model` passes;
    its CT-only options (`nodules`, `slices`) are accepted and have no effect."""
    import torch

    from .network import ChestNet

    if series is not None:
        images = series
    if images < 2 or steps < 1:
        raise ValueError("training needs at least 2 radiographs and 1 step")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with reproducible_torch():
        seeds = [TRAIN_SEED_BASE + seed * 100_000 + i for i in range(images)]
        data = collect(seeds, progress=progress)
        collected = time.perf_counter() - started
        torch.manual_seed(seed)
        rng = np.random.default_rng([seed, 41])
        net = ChestNet(len(QUALITY), len(FINDINGS))
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        net.train()
        history: list[float] = []
        for step in range(steps):
            if step == int(steps * 0.7):
                for g in opt.param_groups:
                    g["lr"] = lr / 10.0
            pick = rng.choice(len(seeds), size=min(batch, len(seeds)), replace=False)
            tensors = {
                k: torch.from_numpy(np.ascontiguousarray(v[pick]))
                for k, v in data.items()
                if k != "images"
            }
            x = torch.from_numpy(data["images"][pick].astype(np.float32))
            opt.zero_grad()
            q, maps = net(x)
            loss, parts = losses(q, maps, tensors)
            loss.backward()
            opt.step()
            history.append(loss.item())
            if progress and (step + 1) % 100 == 0:
                detail = ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
                print(f"  step {step + 1}/{steps}: loss {np.mean(history[-100:]):.3f} ({detail})")
        net.eval()
        weights = out / "chest_radiograph.pt"
        torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, weights)
    sha = sha256_of(weights)
    positives = {q: int(data["quality"][:, i].sum()) for i, q in enumerate(QUALITY)}
    positives.update({f: int(data["has"][:, i].sum()) for i, f in enumerate(FINDINGS)})
    command = command or (
        f"assist_models.chest_radiograph.train({str(out)!r}, seed={seed}, images={images}, "
        f"steps={steps}, batch={batch}, lr={lr})"
    )
    card = ModelCard(
        name=NAME,
        version=VERSION,
        task="classification",
        modality=",".join(MODALITIES),  # "CR,DX", as projects write it
        input_spacing_mm=None,
        window=WINDOW,
        classes=CLASSES,
        training_data=TRAINING_DATA.format(
            images=images,
            first=seeds[0],
            last=seeds[-1],
            finding_p=FINDING_P,
            exposure_p=EXPOSURE_P,
            positioning_p=POSITIONING_P,
            sizes="/".join(str(s) for s in SIZES),
            mono1_p=MONOCHROME1_P,
            counts=", ".join(f"{k} {v}" for k, v in positives.items()),
            command=command,
        ),
        **measured_figures(out / CARD.name, sha),
        intended_use=INTENDED_USE,
        limitations=LIMITATIONS,
        licence="Apache-2.0 (weights and code; trained on synthetic data only)",
        weights_sha256=sha,
        thresholds=dict.fromkeys(CLASSES, 0.5),
        default_threshold=0.5,
    )
    card_path = write_card(out / CARD.name, card)
    return {
        "weights": str(weights),
        "card": str(card_path),
        "sha256": sha,
        "bytes": weights.stat().st_size,
        "images": images,
        "positives": positives,
        "final_loss": round(float(np.mean(history[-50:])), 4),
        "collect_s": round(collected, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }
