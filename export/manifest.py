"""MANIFEST.sha256 and manifest.json.

MANIFEST.sha256 lists "<sha256>  <relative path>" for every file of the
package except itself and manifest.json, sorted by path (the sha256sum format,
so `sha256sum -c MANIFEST.sha256` checks it too). manifest.json states the
version's identity, counts, declared match rule, protocol, the traceability
facts of YY/T 1833 and the CMDE 2023 guideline, whether, where and which model
pre-annotation was used (`pre_annotation`, export/provenance.py), and the
sha256 of MANIFEST.sha256, which therefore pins every other file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from export import fundus
from export.datasheet import _counts, _decision, match_rule_text
from export.model import PackageInput
from export.provenance import pre_annotation

MANIFEST = "MANIFEST.sha256"
MANIFEST_JSON = "manifest.json"
UNLISTED = frozenset({MANIFEST, MANIFEST_JSON})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listed_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in UNLISTED
    )


def manifest_text(root: Path) -> str:
    return "".join(f"{file_sha256(root / rel)}  {rel}\n" for rel in listed_files(root))


def traceability(inp: PackageInput, pre: dict[str, Any] | None = None) -> dict[str, Any]:
    c = _counts(inp)
    pre = pre if pre is not None else pre_annotation(inp)
    dec_zh, dec_en = _decision(inp.protocol)
    rule_zh, rule_en = match_rule_text(inp.protocol)
    experience: dict[str, int] = {}
    for r in inp.roster:
        key = f"{r.role}:{r.experience_band or 'unknown'}"
        experience[key] = experience.get(key, 0) + 1
    return {
        "experts": {
            "readers": c["readers"],
            "arbitrators": c["arbitrators"],
            "experience_bands": dict(sorted(experience.items())),
            "qualification_required": True,
        },
        "decision_mechanism": {"zh": dec_zh, "en": dec_en},
        "information_shown_to_readers": {
            "phase_1": "blind: own marks only, no other reader's marks, no model output unless "
            "pre-labels are shown by the protocol",
            "review_phase": bool(inp.protocol.get("review_phase")),
            "prelabels": inp.protocol.get("prelabel_visibility", "hidden"),
            "prelabels_shown_in_phases": pre["shown_in_phases"],
            "no_assistance_arm_fraction": pre["protocol"]["no_assistance_arm"]["fraction"],
        },
        "clinical_criteria": inp.clinical_criteria,
        "inclusion_criteria": inp.inclusion_criteria,
        "exclusion_criteria": inp.exclusion_criteria,
        "sources_and_devices": {"sites": c["sites"], "devices": c["devices"]},
        "deidentification_profile": inp.deid_profile,
        "annotation_tool": inp.tool_version,
        "model_pre_annotation": {
            "used": pre["used"],
            "models": [f"{m['name']} {m['version']}".strip() for m in pre["models"]],
            "shown_in_phases": pre["shown_in_phases"],
            "details": "pre_annotation",
        },
        "quality_control": {
            "profile": inp.qc_profile.get("version", ""),
            "rules": "docs/qc_plan.json",
        },
        "match_rule": {"zh": rule_zh, "en": rule_en},
        "versions": {"version": inp.version, "parent": inp.parent_version or None},
        "changes": "CHANGELOG.md",
        "retired_data": {"cases": c["retired"], "where": "tables/cases.csv (retired = true)"},
    }


def manifest_json(root: Path, inp: PackageInput, formats: list[str]) -> dict[str, Any]:
    c = _counts(inp)
    pre = pre_annotation(inp)
    photographs = "nifdc" in formats and fundus.applies(inp)
    extra = {"photographs": fundus.summary(inp)} if photographs else {}
    return {
        **extra,
        "dataset_id": inp.dataset_id,
        "version": inp.version,
        "parent_version": inp.parent_version or None,
        "title": inp.title,
        "frozen_at": inp.frozen_at,
        "modality": inp.modality,
        "body_part": inp.body_part,
        "counts": {k: v for k, v in c.items() if k != "devices"},
        "match_rule": {
            "rule": inp.protocol.get("match_rule", ""),
            "threshold": inp.protocol.get("match_threshold"),
        },
        "protocol": inp.protocol,
        "schema": {"key": inp.schema.get("key", ""), "version": inp.schema.get("version", "")},
        "tool_versions": {"refset": inp.tool_version},
        "formats": formats,
        "traceability": traceability(inp, pre),
        "pre_annotation": pre,
        "files": len(listed_files(root)),
        "manifest_sha256": file_sha256(root / MANIFEST),
    }
