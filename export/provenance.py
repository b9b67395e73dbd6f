"""Model pre-annotation in a package: where each finding came from, and the
`pre_annotation` block of manifest.json.

Rules (export/model.py states the origins):

- Readers' findings: `manual`, `model-accepted` or `model-edited`, as recorded
  when the reader acted on a proposal; the model is the proposal's (name,
  version, weights sha256). A review-phase copy keeps its blind-phase origin.
- Reference findings: `model-derived` when at least one supporting reader mark
  came from a model, with the distinct models behind those marks; otherwise
  `manual`.
- Pre-annotation was `used` in a version when a finding of its reads or of its
  reference came from a model, when a reader recorded a decision on a proposal
  (a rejection too: the reader saw it), or when the protocol showed proposals
  and a model offered some on the version's cases.
- Where proposals were shown follows the protocol as frozen: `hidden` in no
  phase, `shown` from phase 1 on (phase 2 as well when there is a review
  phase), `review` in the review phase only; never on the cases of the
  no-assistance arm.

Everything here is plain data; the DICOM writers (seg.py, sr.py) call
`models_of` to name the algorithm of a model-derived segment or measurement.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from export.model import (
    ORIGINS,
    REFERENCE_ORIGINS,
    AssistModelRef,
    FindingRecord,
    PackageInput,
    ReferenceRecord,
)

UNKNOWN_MODEL = "unrecorded assist model"  # a model-sourced finding whose model was not kept

WHERE = {
    "reader_findings": "annotations/reader_reads.csv: source, model, model_sha256",
    "reference_findings": "annotations/reference_standard.csv: origin, n_model_marks, "
    "assist_models",
    "dicom_seg": "SegmentAlgorithmType SEMIAUTOMATIC and "
    "SegmentationAlgorithmIdentificationSequence (family: Artificial Intelligence) on the "
    "segments of model-derived findings",
    "dicom_sr": "Algorithm Identification (TID 4019) on the measurement groups and measurements "
    "of model-derived findings",
}

RULE = {
    "en": "A reader's finding is model-accepted or model-edited when the reader kept or "
    "reshaped a model proposal. A reference finding is model-derived when at least one reader "
    "mark supporting it came from a model; it lists every model behind those marks.",
    "zh": "阅片医师直接采纳或修改模型建议所得的病灶分别记为 model-accepted、model-edited。"
    "参考标准病灶只要有一个支持它的医师标注来自模型，即记为 model-derived，"
    "并列出其背后的全部模型。",
}


def models_of(item: FindingRecord | ReferenceRecord) -> tuple[AssistModelRef, ...]:
    """The assist models behind a finding or reference finding; () when manual."""
    if isinstance(item, ReferenceRecord):
        if item.origin == "manual":
            return ()
        return item.models or (AssistModelRef(""),)
    model = item.model
    return () if model is None else (model,)


def shown_in_phases(protocol: dict[str, Any]) -> list[int]:
    visibility = protocol.get("prelabel_visibility") or "hidden"
    review = bool(protocol.get("review_phase"))
    if visibility == "shown":
        return [1, 2] if review else [1]
    if visibility == "review":
        return [2] if review else []
    return []


def _model_dict(model: AssistModelRef) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "weights_sha256": model.weights_sha256 or None,
    }


def pre_annotation(inp: PackageInput) -> dict[str, Any]:
    """manifest.json's `pre_annotation`: whether, where and which model pre-annotation."""
    protocol = inp.protocol
    reads = Counter(dict.fromkeys(ORIGINS, 0))
    reference = Counter(dict.fromkeys(REFERENCE_ORIGINS, 0))
    per_model: dict[AssistModelRef, dict[str, Any]] = {}

    def entry(model: AssistModelRef) -> dict[str, Any]:
        return per_model.setdefault(
            model,
            {
                **_model_dict(model),
                "task": "",
                "proposals": 0,
                "cases_with_proposals": 0,
                "dispositions": {"accepted": 0, "edited": 0, "rejected": 0},
                "reader_findings": {"model-accepted": 0, "model-edited": 0},
                "reference_findings": 0,
            },
        )

    for read in inp.reads:
        for f in read.findings:
            reads[f.source] += 1
            if f.model is not None:
                entry(f.model)["reader_findings"][f.source] += 1
    for ref in inp.reference:
        reference[ref.origin] += 1
        for model in ref.models:
            entry(model)["reference_findings"] += 1
    for offered in inp.pre_annotation.models:
        e = entry(offered.model)
        e["task"] = offered.task
        e["proposals"] = offered.proposals
        e["cases_with_proposals"] = offered.cases
        e["dispositions"] = {
            "accepted": offered.accepted,
            "edited": offered.edited,
            "rejected": offered.rejected,
        }
    phases = shown_in_phases(protocol)
    model_findings = sum(reads[o] for o in ORIGINS if o != "manual") + reference["model-derived"]
    decided = sum(sum(e["dispositions"].values()) for e in per_model.values())
    offered = sum(e["proposals"] for e in per_model.values())
    unassisted = inp.pre_annotation.unassisted_cases
    return {
        "used": bool(model_findings or decided or (phases and offered)),
        "shown_in_phases": phases,
        "protocol": {
            "visibility": protocol.get("prelabel_visibility") or "hidden",
            "min_confidence": protocol.get("prelabel_min_confidence"),
            "no_assistance_arm": {
                "fraction": protocol.get("unassisted_fraction") or 0.0,
                "seed": protocol.get("unassisted_seed"),
                "cases": None if unassisted is None else len(unassisted),
                "case_ids": None if unassisted is None else sorted(unassisted),
            },
        },
        "models": [per_model[m] for m in sorted(per_model)],
        "findings_by_origin": {"reader_findings": dict(reads), "reference": dict(reference)},
        "rule": RULE,
        "where": WHERE,
    }


def summary(block: dict[str, Any]) -> tuple[str, str]:
    """(zh, en) one line for the datasheet."""
    if not block["used"]:
        return "否", "no"
    models = ", ".join(
        f"{m['name']} {m['version']}".strip()
        + (f" (sha256 {m['weights_sha256'][:12]})" if m["weights_sha256"] else "")
        for m in block["models"]
    )
    phases = "/".join(str(p) for p in block["shown_in_phases"]) or "-"
    counts = block["findings_by_origin"]
    reads = counts["reader_findings"]
    arm = block["protocol"]["no_assistance_arm"]["fraction"]
    zh = (
        f"是：{models}；显示于阅片阶段 {phases}；医师病灶 采纳 {reads['model-accepted']}、"
        f"修改 {reads['model-edited']}、手工 {reads['manual']}；参考标准中来自模型 "
        f"{counts['reference']['model-derived']}；无辅助组比例 {arm}"
        "（见 manifest.json pre_annotation）"
    )
    en = (
        f"yes: {models}; shown in phase {phases}; reader findings accepted "
        f"{reads['model-accepted']}, edited {reads['model-edited']}, manual {reads['manual']}; "
        f"model-derived reference findings {counts['reference']['model-derived']}; "
        f"no-assistance arm fraction {arm} (manifest.json pre_annotation)"
    )
    return zh, en
