"""FROC / CPM of the lung-nodule model on held-out synthetic series.

    .venv/bin/python -m assist_models.lung_nodule evaluate [--series 20] [--write-card]

Held-out series: generator seeds EVAL_SEED_BASE + i (training never uses
them), alternating the "fine" and "coarse" protocols, `nodules` planted
nodules each. The planted nodules are the reference; the model's proposals
(every one down to probability FROC_FLOOR, not only those above its
threshold, so the curve reaches high false-positive rates) are scored by
RefSet's evaluation kit (qc.evaluation.detection.evaluate_detection) under
LUNA16's rule: a proposal hits a nodule when its centre lies within the
nodule's radius; several hits on one nodule count once; CPM is the mean
sensitivity at 1/8 ... 8 false positives per scan; 95% intervals from a
bootstrap over scans. Lesion strata: nodule type and size band; scan strata:
the acquisition protocol (as "manufacturer") and slice thickness.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..builtin import write_performance
from .predictor import CARD, WEIGHTS, LungNodulePredictor
from .synthetic import PlantedNodule, synthetic_series
from .training import EVAL_SEED_BASE

FROC_FLOOR = 0.01


def truth_of(scans: list[tuple[Any, list[PlantedNodule], str]]):
    """The evaluation kit's Truth for generated series: (series, nodules, protocol)."""
    from qc.evaluation.detection_hits import RADIUS
    from qc.evaluation.truth import Lesion, Scan, Truth, size_band, thickness_band
    from qc.matching import Grid

    out_scans, lesions = [], []
    for series, nodules, protocol in scans:
        uid = series.series_uid
        grid = Grid.regular(
            series.shape[0],
            origin=series.origin,
            spacing=series.spacing,
            rows=series.shape[1],
            columns=series.shape[2],
            slice_thickness=series.spacing[0],
        )
        strata = {
            "site": "synthetic",
            "manufacturer": protocol,
            "slice_thickness": thickness_band(series.spacing[0]),
        }
        out_scans.append(Scan(uid, uid, uid, grid, "positive" if nodules else "negative", strata))
        for k, n in enumerate(nodules):
            lesions.append(
                Lesion(
                    lesion_id=f"{uid}/{k + 1}",
                    series_uid=uid,
                    case_id=uid,
                    finding_type="nodule",
                    centre_mm=n.centre_mm,
                    diameter_mm=n.diameter_mm,
                    readers=1,
                    strata={
                        "finding_type": n.type,
                        "size": size_band(n.diameter_mm),
                        "agreement": "all readers",
                    },
                )
            )
    return Truth(
        dataset_id="synthetic-held-out",
        version="generator",
        split="",
        rule=RADIUS,
        threshold=0.0,
        readers_per_case=1,
        scans=tuple(out_scans),
        lesions=tuple(lesions),
    )


def detections_of(series_uid: str, proposals) -> list[Any]:
    from qc.evaluation.submission import Detection

    return [
        Detection(series_uid, *(float(v) for v in p.geometry["centre_mm"]), p.confidence, 0)
        for p in proposals
    ]


def evaluate(
    *,
    weights: str | Path = WEIGHTS,
    series: int = 20,
    nodules: int = 5,
    first_seed: int = EVAL_SEED_BASE,
    slices: dict[str, int] | None = None,
    bootstrap: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    """The kit's detection result plus `attributes` (type agreement, size error)."""
    from qc.evaluation.detection import evaluate_detection

    predictor = LungNodulePredictor(weights)
    threshold = float(predictor.card.default_threshold or 0.5)
    scans, detections = [], []
    type_agree = type_total = 0
    size_err = []
    started = time.perf_counter()
    for i in range(series):
        protocol = "fine" if i % 2 == 0 else "coarse"
        opts = {} if not slices else {"slices": slices[protocol]}
        vol, truth = synthetic_series(first_seed + i, protocol, nodules=nodules, **opts)
        pred = predictor.predict(vol, threshold=FROC_FLOOR)
        scans.append((vol, truth, protocol))
        detections += detections_of(vol.series_uid, pred.proposals)
        for t in truth:
            best = None
            for p in pred.proposals:
                d = float(np.linalg.norm(np.subtract(p.geometry["centre_mm"], t.centre_mm)))
                if (
                    d < t.diameter_mm / 2.0
                    and p.confidence >= threshold
                    and (best is None or p.confidence > best.confidence)
                ):
                    best = p
            if best is not None:
                type_total += 1
                type_agree += best.attributes["nodule_type"] == t.type.replace("-", "_")
                size_err.append(abs(best.attributes["long_axis_mm"] - t.diameter_mm))
        if progress:
            print(
                f"  series {i + 1}/{series} ({protocol}): {len(pred.proposals)} proposals, "
                f"{len(truth)} nodules",
                flush=True,
            )
    seconds = time.perf_counter() - started
    result = evaluate_detection(
        truth_of(scans),
        detections,
        operating_threshold=threshold,
        bootstrap=bootstrap,
        seed=0,
        all_rules=False,
    )
    result["attributes"] = {
        "nodule_type_agreement": type_agree / type_total if type_total else None,
        "size_error_mm_median": float(np.median(size_err)) if size_err else None,
        "measured_nodules": type_total,
    }
    result["run"] = {"seeds": [first_seed, first_seed + series - 1], "seconds": round(seconds, 1)}
    return result


def performance(result: dict[str, Any]) -> dict[str, float]:
    """The figures a model card carries, from `evaluate`'s result."""
    figs = result["figures"]
    out: dict[str, float] = {}
    for name in ("cpm", "sens_at_0.125", "sens_at_0.5", "sens_at_1", "sens_at_2", "sens_at_4"):
        key = {"cpm": "cpm"}.get(name, name.replace("sens_at_", "sensitivity_at_") + "_fp_per_scan")
        out[key] = round(figs[name]["value"], 4)
        if figs[name].get("ci"):
            out[key + "_ci_low"] = round(figs[name]["ci"][0], 4)
            out[key + "_ci_high"] = round(figs[name]["ci"][1], 4)
    for name in ("sensitivity", "fp_per_scan"):
        out[f"{name}_at_threshold_0.5"] = round(figs[name]["value"], 4)
    out["held_out_scans"] = float(result["counts"]["scans"])
    out["held_out_nodules"] = float(result["counts"]["lesions"])
    types = result.get("strata", {}).get("finding_type", {})
    for level, data in sorted(types.items()):
        value = data["figures"]["sens_at_2"]["value"]
        if value is not None:
            out[f"sensitivity_at_2_fp_per_scan_{level.replace('-', '_')}"] = round(value, 4)
    attrs = result["attributes"]
    if attrs["nodule_type_agreement"] is not None:
        out["nodule_type_agreement"] = round(attrs["nodule_type_agreement"], 4)
    if attrs["size_error_mm_median"] is not None:
        out["size_error_mm_median"] = round(attrs["size_error_mm_median"], 2)
    return out


def write_card_performance(result: dict[str, Any], command: str, card: Path = CARD) -> None:
    write_performance(card, performance(result), command)


# ------------------------------------------------------------------ two versions


def truth_of_examples(examples, *, dataset_id: str = "held-out") -> Any:
    """The evaluation kit's Truth for cases with reference nodules
    (training.Example): unscored nodules are excluded lesions."""
    from qc.evaluation.detection_hits import RADIUS
    from qc.evaluation.truth import Lesion, Scan, Truth, size_band
    from qc.matching import Grid

    scans, lesions = [], []
    for ex in examples:
        s = ex.series
        uid = s.series_uid or ex.case_id
        grid = Grid(
            positions=tuple(s.index_to_mm(i, 0, 0) for i in range(s.shape[0])),
            row_cosine=tuple(float(v) for v in s.orientation[:3]),
            column_cosine=tuple(float(v) for v in s.orientation[3:]),
            pixel_spacing=(float(s.spacing[1]), float(s.spacing[2])),
            rows=s.shape[1],
            columns=s.shape[2],
            slice_thickness=float(s.spacing[0]),
        )
        label = "positive" if any(n.scored for n in ex.nodules) else "negative"
        scans.append(Scan(uid, ex.case_id, ex.case_id, grid, label, {}))
        for k, n in enumerate(ex.nodules):
            lesions.append(
                Lesion(
                    lesion_id=f"{ex.case_id}/{k + 1}",
                    series_uid=uid,
                    case_id=ex.case_id,
                    finding_type="nodule",
                    centre_mm=tuple(float(v) for v in n.centre_mm),
                    diameter_mm=n.diameter_mm,
                    excluded=not n.scored,
                    readers=1,
                    strata={"size": size_band(n.diameter_mm)} if n.diameter_mm else {},
                )
            )
    return Truth(
        dataset_id=dataset_id,
        version="",
        split="held-out",
        rule=RADIUS,
        threshold=0.0,
        readers_per_case=1,
        scans=tuple(scans),
        lesions=tuple(lesions),
    )


def _proposals(predictor, series, prep):
    """Every proposal down to FROC_FLOOR; the candidates (`prep`) are shared
    between the versions compared when the predictor is this package's."""
    if prep is not None and hasattr(predictor, "score") and hasattr(predictor, "proposals"):
        scores = predictor.score(prep.patches) if len(prep.candidates) else np.zeros(0)
        return predictor.proposals(series, prep, scores, FROC_FLOOR)
    return list(predictor.predict(series, threshold=FROC_FLOOR).proposals)


FIGURES = {
    "cpm": "cpm",
    "sensitivity_at_0.5_fp_per_scan": "sens_at_0.5",
    "sensitivity_at_1_fp_per_scan": "sens_at_1",
    "sensitivity_at_2_fp_per_scan": "sens_at_2",
    "sensitivity_at_4_fp_per_scan": "sens_at_4",
    "sensitivity_at_threshold": "sensitivity",
    "fp_per_scan_at_threshold": "fp_per_scan",
}


def _summary(result: dict[str, Any], threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {"threshold": threshold}
    for key, name in FIGURES.items():
        fig = result["figures"].get(name) or {}
        value = fig.get("value")
        out[key] = None if value is None else round(float(value), 4)
        if key == "cpm" and fig.get("ci"):
            out["cpm_ci"] = [None if v is None else round(float(v), 4) for v in fig["ci"]]
    return out


def compare_versions(
    examples, parent, new, *, bootstrap: int = 500, seed: int = 0
) -> dict[str, Any]:
    """Both predictors on the same held-out cases (training.Example), scored by
    the evaluation kit under LUNA16's rule: each one's CPM (95% bootstrap
    interval over scans), sensitivity at 0.5-4 false positives per scan and at
    its own threshold, and the paired bootstrap of the CPM difference (new -
    parent, qc.evaluation.compare: same resamples for both)."""
    from qc.evaluation.compare import compare
    from qc.evaluation.detection import evaluate_detection
    from qc.evaluation.submission import Parsed

    from .predictor import prepare

    truth = truth_of_examples(examples)
    marks: dict[str, list] = {"parent": [], "new": []}
    started = time.perf_counter()
    for ex in examples:
        uid = ex.series.series_uid or ex.case_id
        prep = prepare(ex.series) if hasattr(parent, "score") else None
        for key, predictor in (("parent", parent), ("new", new)):
            marks[key] += detections_of(uid, _proposals(predictor, ex.series, prep))
    out: dict[str, Any] = {
        "rule": "LUNA16: a proposal hits a nodule when its centre lies within the "
        "nodule's radius (10 mm diameter when unknown)",
        "held_out_cases": len(examples),
        "held_out_nodules": sum(1 for les in truth.lesions if not les.excluded),
        "bootstrap": bootstrap,
        "seed": seed,
    }
    for key, predictor in (("parent", parent), ("new", new)):
        threshold = float(predictor.card.default_threshold or 0.5)
        result = evaluate_detection(
            truth,
            marks[key],
            operating_threshold=threshold,
            bootstrap=bootstrap,
            seed=seed,
            strata=False,
            all_rules=False,
        )
        out[key] = {
            "version": predictor.card.version,
            "weights_sha256": predictor.card.weights_sha256,
            **_summary(result, threshold),
        }

    def parsed(key: str):
        return Parsed(kind="detection", sha256="", detections=tuple(marks[key]))

    paired = compare(truth, parsed("new"), parsed("parent"), bootstrap=bootstrap, seed=seed)
    diff = paired["difference"]
    out["cpm_difference"] = {
        "value": None if diff["value"] is None else round(diff["value"], 4),
        "ci": [None if v is None else round(float(v), 4) for v in (diff["ci"] or [])] or None,
        "p": None if diff["p"] is None else round(diff["p"], 4),
    }
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def performance_of_comparison(comparison: dict[str, Any], training_cases: int) -> dict[str, float]:
    """The figures a fine-tuned version's card carries (numbers only): its own on
    the held-out cases, its parent's CPM there, and the difference."""
    out: dict[str, float] = {}
    new, parent = comparison["new"], comparison["parent"]
    for key in FIGURES:
        if new.get(key) is not None:
            out[key] = float(new[key])
    if new.get("cpm_ci"):
        out["cpm_ci_low"], out["cpm_ci_high"] = (float(v) for v in new["cpm_ci"])
    if parent.get("cpm") is not None:
        out["parent_cpm"] = float(parent["cpm"])
    diff = comparison["cpm_difference"]
    if diff["value"] is not None:
        out["cpm_difference"] = float(diff["value"])
    if diff.get("ci"):
        out["cpm_difference_ci_low"], out["cpm_difference_ci_high"] = (float(v) for v in diff["ci"])
    out["held_out_scans"] = float(comparison["held_out_cases"])
    out["held_out_nodules"] = float(comparison["held_out_nodules"])
    out["training_cases"] = float(training_cases)
    return out
