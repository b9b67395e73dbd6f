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

Fine-tuning (`fine_tune`): the same network, started from a version's weights
and trained on `Example`s -- a series with its reference nodules (e.g. a RefSet
project's adjudicated findings) instead of generated ones. Candidates are
labelled by the same rule; a candidate within an unscored finding's radius
(an excluded one) is left out rather than called a negative.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..builtin import measured_figures, reproducible_torch, write_card
from ..interface import ModelCard, SeriesVolume, sha256_of
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


_CUTS = ((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def _label(prep, centres, ignored, patches: list, labels: list) -> None:
    """Append one series' patches and labels: a candidate within a nodule's
    radius (`centres`: working-grid index, radius mm) is a positive, one within
    an ignored finding's radius is left out, any other is a negative; each
    nodule is also cut at its centre and one voxel off in each direction."""
    s = cand.SPACING_MM
    label = np.zeros(len(prep.candidates), dtype=np.float32)
    keep = np.ones(len(prep.candidates), dtype=bool)
    for i, c in enumerate(prep.candidates):
        at = np.asarray(c.index, dtype=float)
        if any(np.linalg.norm((at - w) * s) <= r for w, r in centres):
            label[i] = 1.0
        elif any(np.linalg.norm((at - w) * s) <= r for w, r in ignored):
            keep[i] = False
    patches.append(prep.patches[keep] if not keep.all() else prep.patches)
    labels.append(label[keep] if not keep.all() else label)
    extra = []
    for w, _r in centres:
        base = np.rint(w).astype(int)
        for d in _CUTS:
            p = np.clip(base + d, 0, np.asarray(prep.working.shape) - 1)
            extra.append(tuple(int(v) for v in p))
    if extra:
        patches.append(extract_patches(prep.working, extra))
        labels.append(np.ones(len(extra), dtype=np.float32))


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
        _label(prep, centres, [], patches, labels)
    x = np.concatenate(patches) if patches else np.zeros((0, 1, 24, 24, 24), np.float32)
    y = np.concatenate(labels) if labels else np.zeros(0, np.float32)
    return x, y, {"positives": int(y.sum()), "negatives": int((y == 0).sum())}


def _fit(net, x: np.ndarray, y: np.ndarray, *, seed: int, steps: int, batch: int, lr: float):
    """Balanced batches (half positives), augmented; Adam with the rate cut to a
    tenth after 70% of the steps. Returns the losses."""
    import torch

    rng = np.random.default_rng([seed, 11])
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
    return losses


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
    started = time.perf_counter()
    with reproducible_torch():
        seeds = [TRAIN_SEED_BASE + seed * 1000 + i for i in range(series)]
        x, y, counts = collect(seeds, nodules=nodules, slices=slices)
        if counts["positives"] == 0 or counts["negatives"] == 0:
            raise ValueError(f"training data needs both classes, got {counts}")
        collected = time.perf_counter() - started
        torch.manual_seed(seed)
        net = NoduleNet()
        losses = _fit(net, x, y, seed=seed, steps=steps, batch=batch, lr=lr)
        weights = out / "lung_nodule.pt"
        torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, weights)
    sha = sha256_of(weights)
    fine = (slices or {}).get("fine", 200)
    coarse = (slices or {}).get("coarse", 100)
    command = command or (
        f"assist_models.lung_nodule.train({str(out)!r}, seed={seed}, series={series}, "
        f"nodules={nodules}, steps={steps}, batch={batch}, lr={lr}, slices={slices!r})"
    )
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
        **measured_figures(out / CARD.name, sha),
        intended_use=INTENDED_USE,
        limitations=LIMITATIONS,
        licence="Apache-2.0 (weights and code; trained on synthetic data only)",
        weights_sha256=sha,
        thresholds={"nodule": 0.5},
        default_threshold=0.5,
    )
    card_path = write_card(out / CARD.name, card)
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


# ------------------------------------------------------------------ fine-tuning

FINE_TUNE_LR = 2e-4
DEFAULT_DIAMETER_MM = 10.0  # a reference nodule of unknown size (the evaluation kit's rule)


@dataclass(frozen=True)
class Nodule:
    """One reference finding of a series: patient-space centre and diameter (mm).
    `scored` False: an excluded finding (or one of a type the model does not
    propose): neither a positive nor a negative in training, neither a hit nor a
    false positive in evaluation."""

    centre_mm: tuple[float, float, float]
    diameter_mm: float | None = None
    scored: bool = True


@dataclass(frozen=True)
class Example:
    """One case for fine-tuning or held-out evaluation: its series and its
    reference nodules (none: a case without nodules, all its candidates negative)."""

    case_id: str
    series: SeriesVolume
    nodules: tuple[Nodule, ...] = ()


def mm_to_index(series: SeriesVolume, centre_mm) -> np.ndarray:
    """(slice, row, column) of a patient-space point: the inverse of
    SeriesVolume.index_to_mm."""
    row_dir = np.asarray(series.orientation[:3], dtype=float)
    col_dir = np.asarray(series.orientation[3:], dtype=float)
    normal = np.cross(row_dir, col_dir)
    d = np.asarray(centre_mm, dtype=float) - np.asarray(series.origin, dtype=float)
    ds, dr, dc = (float(v) for v in series.spacing)
    return np.array([d @ normal / ds, d @ col_dir / dr, d @ row_dir / dc])


def collect_examples(examples: list[Example]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(patches, labels, counts) from cases with reference nodules, as `collect`
    does for synthetic series (same candidates, same labelling rule)."""
    from .predictor import prepare

    patches: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for ex in examples:
        prep = prepare(ex.series)
        centres, ignored = [], []
        for n in ex.nodules:
            w = (mm_to_index(ex.series, n.centre_mm) + 0.5) / np.asarray(prep.scale) - 0.5
            radius = max((n.diameter_mm or DEFAULT_DIAMETER_MM) / 2.0, 2.0)
            (centres if n.scored else ignored).append((w, radius))
        _label(prep, centres, ignored, patches, labels)
    x = np.concatenate(patches) if patches else np.zeros((0, 1, 24, 24, 24), np.float32)
    y = np.concatenate(labels) if labels else np.zeros(0, np.float32)
    return x, y, {"positives": int(y.sum()), "negatives": int((y == 0).sum())}


def fine_tune(
    out_dir: str | Path,
    examples: list[Example],
    *,
    base_weights: str | Path,
    base_card: ModelCard,
    version: str,
    epochs: int = 3,
    batch: int = 32,
    lr: float = FINE_TUNE_LR,
    seed: int = 0,
    training_data: str = "",
    command: str = "",
) -> dict[str, Any]:
    """Fine-tune the classifier from `base_weights` on `examples` (cases with
    reference nodules, e.g. a RefSet project's adjudicated ones) and write
    `lung_nodule.pt` and `lung_nodule.card.json` (version `version`, the base
    card's fields otherwise, performance left empty for the caller to measure)
    into `out_dir`. An epoch is as many balanced batches as there are patches
    divided by `batch`. Deterministic as `train` is. Returns a summary."""
    import torch

    from .network import NoduleNet

    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with reproducible_torch():
        x, y, counts = collect_examples(examples)
        if counts["positives"] == 0 or counts["negatives"] == 0:
            raise ValueError(
                f"fine-tuning needs reference nodules and candidates beside them, got {counts}"
            )
        collected = time.perf_counter() - started
        steps = epochs * max(1, -(-len(y) // batch))
        torch.manual_seed(seed)
        net = NoduleNet()
        net.load_state_dict(torch.load(base_weights, map_location="cpu", weights_only=True))
        losses = _fit(net, x, y, seed=seed, steps=steps, batch=batch, lr=lr)
        weights = out / "lung_nodule.pt"
        torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, weights)
    sha = sha256_of(weights)
    data = base_card.to_dict()
    data.update(
        version=version,
        training_data=training_data
        or (
            f"Fine-tuned from {base_card.name} {base_card.version} (weights sha256 "
            f"{base_card.weights_sha256}) on {len(examples)} cases with reference nodules: "
            f"{counts['positives']} positive and {counts['negatives']} negative patches."
        ),
        performance={},
        performance_command=command,
        weights_sha256=sha,
    )
    card = ModelCard.from_dict(data)
    card_path = write_card(out / CARD.name, card)
    return {
        "weights": str(weights),
        "card": str(card_path),
        "sha256": sha,
        "cases": len(examples),
        **counts,
        "epochs": epochs,
        "steps": steps,
        "lr": lr,
        "seed": seed,
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "collect_s": round(collected, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }
