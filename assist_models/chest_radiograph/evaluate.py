"""ROC AUC of the chest radiograph model on held-out synthetic radiographs.

    .venv/bin/python -m assist_models.chest_radiograph evaluate [--images 400] [--size PX]
                                                                [--write-card]

Held-out radiographs: generator seeds EVAL_SEED_BASE + i (training never
uses them), drawn as the training ones are (synthetic.py). Per class of the
model: the ROC AUC of its case probability against the truth (scikit-learn's
roc_auc_score), a 95% interval from a bootstrap over images (seeded), and the
sensitivity and specificity at the card's threshold. Per finding type, on the
images that have it: how often the best proposal (every local maximum down
to probability 0, so a miss of the threshold is not a miss of the place) has
an IoU of at least HIT_IOU with the truth box, and the median IoU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..builtin import write_performance
from .predictor import CARD, CLASSES, WEIGHTS, ChestRadiographPredictor, _iou
from .synthetic import FINDINGS, synthetic_radiograph
from .training import EVAL_SEED_BASE

HIT_IOU = 0.3
BATCH = 32


def auc_with_interval(
    truth: np.ndarray, score: np.ndarray, *, bootstrap: int = 1000, seed: int = 0
) -> tuple[float | None, tuple[float, float] | None]:
    """ROC AUC and its bootstrap 95% interval (None where one class is missing)."""
    from sklearn.metrics import roc_auc_score

    if truth.min() == truth.max():
        return None, None
    value = float(roc_auc_score(truth, score))
    if bootstrap <= 0:
        return value, None
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(truth), len(truth))
        if truth[pick].min() != truth[pick].max():
            samples.append(roc_auc_score(truth[pick], score[pick]))
    low, high = np.percentile(samples, [2.5, 97.5])
    return value, (float(low), float(high))


def evaluate(
    *,
    weights: str | Path = WEIGHTS,
    images: int = 400,
    first_seed: int = EVAL_SEED_BASE,
    size: int | None = None,
    bootstrap: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    """Per class: AUC (with interval), sensitivity and specificity at the
    threshold; per finding type: localisation; plus the run's seeds and time.
    `size`: every radiograph at this matrix instead of the drawn one."""
    predictor = ChestRadiographPredictor(weights, device="cpu")
    threshold = float(predictor.card.default_threshold or 0.5)
    truth = np.zeros((images, len(CLASSES)), np.int64)
    score = np.zeros((images, len(CLASSES)), np.float64)
    ious: dict[str, list[float]] = {f: [] for f in FINDINGS}
    started = time.perf_counter()
    for i in range(images):
        case = synthetic_radiograph(first_seed + i, size=size)
        labels = case.labels()
        truth[i] = [labels[c] for c in CLASSES]
        prediction = predictor.predict(case.series, threshold=0.0)
        score[i] = [prediction.case_probabilities[c] for c in CLASSES]
        for f in case.findings:
            best = max(
                (p for p in prediction.proposals if p.finding_type == f.type),
                key=lambda p: p.confidence,
                default=None,
            )
            if best is None:
                ious[f.type].append(0.0)
            else:
                (x0, y0), (x1, y1) = best.geometry["shapes"][0]["points"]
                ious[f.type].append(_iou((x0, y0, x1, y1), f.box))
        if progress and (i + 1) % 100 == 0:
            print(f"  {i + 1}/{images} radiographs", flush=True)
    seconds = time.perf_counter() - started
    classes: dict[str, Any] = {}
    for k, name in enumerate(CLASSES):
        auc, ci = auc_with_interval(truth[:, k], score[:, k], bootstrap=bootstrap, seed=k)
        pos, neg = truth[:, k] == 1, truth[:, k] == 0
        called = score[:, k] >= threshold
        classes[name] = {
            "auc": auc,
            "auc_ci": ci,
            "positives": int(pos.sum()),
            "sensitivity": float(called[pos].mean()) if pos.any() else None,
            "specificity": float((~called[neg]).mean()) if neg.any() else None,
        }
    localisation = {
        f: {
            "hit_rate": float(np.mean(np.asarray(v) >= HIT_IOU)) if v else None,
            "iou_median": float(np.median(v)) if v else None,
            "findings": len(v),
        }
        for f, v in ious.items()
    }
    return {
        "classes": classes,
        "localisation": localisation,
        "threshold": threshold,
        "run": {
            "images": images,
            "seeds": [first_seed, first_seed + images - 1],
            "size": size,
            "seconds": round(seconds, 1),
        },
    }


def performance(result: dict[str, Any]) -> dict[str, float]:
    """The figures a model card carries, from `evaluate`'s result."""
    out: dict[str, float] = {}
    for name, data in result["classes"].items():
        if data["auc"] is None:
            continue
        out[f"auc_{name}"] = round(data["auc"], 4)
        if data["auc_ci"]:
            out[f"auc_{name}_ci_low"] = round(data["auc_ci"][0], 4)
            out[f"auc_{name}_ci_high"] = round(data["auc_ci"][1], 4)
    for name, data in result["classes"].items():
        for key in ("sensitivity", "specificity"):
            if data[key] is not None:
                out[f"{key}_at_threshold_0.5_{name}"] = round(data[key], 4)
    for name, data in result["localisation"].items():
        if data["hit_rate"] is not None:
            out[f"box_iou_{HIT_IOU}_hit_rate_{name}"] = round(data["hit_rate"], 4)
            out[f"box_iou_median_{name}"] = round(data["iou_median"], 4)
    out["held_out_images"] = float(result["run"]["images"])
    for name, data in result["classes"].items():
        out[f"held_out_positives_{name}"] = float(data["positives"])
    return out


def write_card_performance(result: dict[str, Any], command: str, card: Path = CARD) -> None:
    write_performance(card, performance(result), command)
