"""Training the lung-nodule classifier on synthetic series, reproducibly.

    .venv/bin/python -m assist_models.lung_nodule train [--out assist_models/weights]

Data: `series` series from the synthetic CT generator (fixtures/ct.py), seeds
TRAIN_SEED_BASE + i (held-out evaluation uses EVAL_SEED_BASE + i: never the
same), alternating the "fine" and "coarse" acquisition protocols, each with
`nodules` planted nodules. Candidates come from the same generator the
predictor uses; a candidate within a planted nodule's radius (at least 2 mm)
is a positive, any other a negative. Positives are also cut at the planted
centre, one voxel off in each direction, so the classifier sees off-centre
cuts of every nodule.

Training: balanced batches (half positives), random flips and in-plane
transposes, Adam, binary cross-entropy. Deterministic: seeded NumPy and
torch generators, `torch.use_deterministic_algorithms(True)` and one CPU
thread, so the same arguments give the same weights file (same sha256).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..interface import ModelCard, sha256_of
from . import candidates as cand
from .predictor import CARD, NAME, PATCH_WINDOW, extract_patches
from .synthetic import synthetic_series

VERSION = "1.0.0"
TRAIN_SEED_BASE = 100_000
EVAL_SEED_BASE = 900_000
INTENDED_USE = (
    "Pre-labeling proposals of lung nodules on chest CT for readers to accept, edit or "
    "reject in RefSet; a demonstration that the assist interface works offline on a fresh "
    "machine. Not a medical device; never a reference standard on its own."
)
LIMITATIONS = (
    "Trained and evaluated on synthetic data only (RefSet's CT generator: spheres of "
    "solid, part-solid and ground-glass density in a simulated chest with vessels and "
    "airways); its figures say nothing about real CT. Juxtapleural and juxtavascular "
    "ground-glass nodules touching large soft-tissue structures can be missed by the "
    "candidate stage. Sizes are equivalent-sphere diameters, not RECIST long axes."
)
TRAINING_DATA = (
    "Synthetic chest CT only, from fixtures/ct.py (plan_ct/render_slice_hu), generator "
    "seeds {first}..{last}, alternating 0.7 mm pixels / 1.25 mm slices (512 matrix, "
    "{fine} slices) and 1.4 mm / 2.5 mm (256 matrix, {coarse} slices), {nodules} planted "
    "nodules per series (solid, part-solid, ground-glass, 3-24 mm), noise 8-20 HU: "
    "{pos} positive patches (candidates within a nodule's radius and 7 cuts about each "
    "planted centre) and {neg} negative candidates. Reproduce: {command}"
)


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = batch.copy()
    for i in range(len(out)):
        v = out[i, 0]
        for axis in range(3):
            if rng.random() < 0.5:
                v = np.flip(v, axis)
        if rng.random() < 0.5:
            v = np.swapaxes(v, 1, 2)
        out[i, 0] = v
    return out


def collect(
    seeds: list[int], *, nodules: int, slices: dict[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(patches, labels, summary) from the series of `seeds`."""
    from .predictor import prepare

    patches, labels = [], []
    for n, seed in enumerate(seeds):
        protocol = "fine" if n % 2 == 0 else "coarse"
        noise = float(np.random.default_rng([seed, 7]).uniform(8.0, 20.0))
        opts = {} if not slices else {"slices": slices[protocol]}
        series, truth = synthetic_series(seed, protocol, nodules=nodules, noise_hu=noise, **opts)
        prep = prepare(series)
        s = cand.SPACING_MM
        # planted centres on the working grid (index = (mm offset / spacing) mapped through
        # the resampling: working i samples series (i + 0.5) * scale - 0.5)
        org = np.asarray(series.origin)
        centres = []
        for t in truth:
            off = np.asarray(t.centre_mm) - org
            idx = np.array(
                [off[2] / series.spacing[0], off[1] / series.spacing[1], off[0] / series.spacing[2]]
            )
            w = (idx + 0.5) / np.asarray(prep.scale) - 0.5
            centres.append((w, max(t.diameter_mm / 2.0, 2.0)))
        label = np.zeros(len(prep.candidates), dtype=np.float32)
        for i, c in enumerate(prep.candidates):
            at = np.asarray(c.index, dtype=float)
            if any(np.linalg.norm((at - w) * s) <= r for w, r in centres):
                label[i] = 1.0
        patches.append(prep.patches)
        labels.append(label)
        extra = []
        for w, _r in centres:
            base = np.rint(w).astype(int)
            for d in [
                (0, 0, 0),
                (1, 0, 0),
                (-1, 0, 0),
                (0, 1, 0),
                (0, -1, 0),
                (0, 0, 1),
                (0, 0, -1),
            ]:
                p = np.clip(base + d, 0, np.asarray(prep.working.shape) - 1)
                extra.append(tuple(int(v) for v in p))
        if extra:
            patches.append(extract_patches(prep.working, extra))
            labels.append(np.ones(len(extra), dtype=np.float32))
    x = np.concatenate(patches) if patches else np.zeros((0, 1, 24, 24, 24), np.float32)
    y = np.concatenate(labels) if labels else np.zeros(0, np.float32)
    return x, y, {"positives": int(y.sum()), "negatives": int((y == 0).sum())}


def train(
    out_dir: str | Path,
    *,
    seed: int = 0,
    series: int = 16,
    nodules: int = 6,
    steps: int = 1500,
    batch: int = 32,
    lr: float = 1e-3,
    slices: dict[str, int] | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Train, write `lung_nodule.pt` and `lung_nodule.card.json` into `out_dir`;
    return a summary (paths, sha256, counts, seconds)."""
    import torch

    from .network import NoduleNet

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    try:
        seeds = [TRAIN_SEED_BASE + seed * 1000 + i for i in range(series)]
        x, y, counts = collect(seeds, nodules=nodules, slices=slices)
        if counts["positives"] == 0 or counts["negatives"] == 0:
            raise ValueError(f"training data needs both classes, got {counts}")
        collected = time.perf_counter() - started
        torch.manual_seed(seed)
        rng = np.random.default_rng([seed, 11])
        net = NoduleNet()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        half = batch // 2
        net.train()
        losses = []
        for step in range(steps):
            if step == int(steps * 0.7):
                for g in opt.param_groups:
                    g["lr"] = lr / 10.0
            pick = np.concatenate([rng.choice(pos, half), rng.choice(neg, batch - half)])
            xb = torch.from_numpy(_augment(x[pick], rng))
            yb = torch.from_numpy(y[pick])
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        net.eval()
        weights = out / "lung_nodule.pt"
        torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, weights)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    sha = sha256_of(weights)
    fine = (slices or {}).get("fine", 200)
    coarse = (slices or {}).get("coarse", 100)
    command = command or (
        f"assist_models.lung_nodule.train({str(out)!r}, seed={seed}, series={series}, "
        f"nodules={nodules}, steps={steps}, batch={batch}, lr={lr}, slices={slices!r})"
    )
    previous = _previous_card(out)
    card = ModelCard(
        name=NAME,
        version=VERSION,
        task="detection",
        modality="CT",
        input_spacing_mm=(cand.SPACING_MM,) * 3,
        window=PATCH_WINDOW,
        classes=("nodule",),
        training_data=TRAINING_DATA.format(
            first=seeds[0],
            last=seeds[-1],
            fine=fine,
            coarse=coarse,
            nodules=nodules,
            pos=counts["positives"],
            neg=counts["negatives"],
            command=command,
        ),
        # measured figures belong to the weights they were measured on
        performance=previous.get("performance", {}) if previous.get("sha") == sha else {},
        performance_command=(
            previous.get("performance_command", "") if previous.get("sha") == sha else ""
        ),
        intended_use=INTENDED_USE,
        limitations=LIMITATIONS,
        licence="Apache-2.0 (weights and code; trained on synthetic data only)",
        weights_sha256=sha,
        thresholds={"nodule": 0.5},
        default_threshold=0.5,
    )
    card_path = out / CARD.name
    card_path.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return {
        "weights": str(weights),
        "card": str(card_path),
        "sha256": sha,
        "bytes": weights.stat().st_size,
        **counts,
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "collect_s": round(collected, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }


def _previous_card(out: Path) -> dict[str, Any]:
    path = out / CARD.name
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        "sha": data.get("weights_sha256"),
        "performance": data.get("performance", {}),
        "performance_command": data.get("performance_command", ""),
    }
