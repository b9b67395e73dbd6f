"""The changes of a version against its parent, computed from what each holds,
never typed. Plain data in, plain data out (the callers convert rows).

Each side is {case_code: CaseState}; a CaseState carries the case's split,
whether it is retired (and why), and its reference standard: the current
reference findings by `ref_key` and the current case-level labels.

Rules:
- added: in the child and not retired, and not (unretired) in the parent;
- retired: retired in the child, with its reason (a parent case that is absent
  from the child counts as retired too: "not carried over");
- reference changes, per finding (`ref_key`) of a case in both: "added" (a new
  current finding), "removed" (no longer current), "changed" (another revision),
  each with the arbitration task that wrote the child's revision;
- label changes: the case-level reference answers moved to another revision;
- split changes: a case that sits in another split than in the parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CaseState:
    split: str
    retired: bool = False
    retired_reason: str = ""
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref_key -> revision
    labels: dict[str, Any] | None = None


def _detail(old: dict, new: dict) -> str:
    parts = []
    if old.get("status") != new.get("status"):
        parts.append(f"status {old.get('status')} -> {new.get('status')}")
    if old.get("finding_type") != new.get("finding_type"):
        parts.append(f"type {old.get('finding_type')} -> {new.get('finding_type')}")
    old_attrs, new_attrs = old.get("attributes") or {}, new.get("attributes") or {}
    changed = sorted(
        k for k in set(old_attrs) | set(new_attrs) if old_attrs.get(k) != new_attrs.get(k)
    )
    if changed:
        parts.append("attributes " + ", ".join(changed))
    if old.get("geometry") != new.get("geometry") or old.get("diameter_mm") != new.get(
        "diameter_mm"
    ):
        parts.append("geometry")
    return "; ".join(parts)


def _arbitration_id(rev: dict | None) -> str:
    task = (rev or {}).get("arbitration_task")
    return str(task) if task else ""


def compute(parent_version: str, parent: dict[str, CaseState], child: dict[str, CaseState]) -> dict:
    live_parent = {c: s for c, s in parent.items() if not s.retired}
    added = sorted(c for c, s in child.items() if not s.retired and c not in live_parent)
    retired = sorted(
        [c, s.retired_reason] for c, s in child.items() if s.retired and c in live_parent
    )
    retired += sorted([c, "not carried over"] for c in live_parent if c not in child)
    reference_changes: list[dict] = []
    label_changes: list[dict] = []
    split_changes: list[dict] = []
    for code in sorted(set(live_parent) & {c for c, s in child.items() if not s.retired}):
        old, new = live_parent[code], child[code]
        if old.split != new.split:
            split_changes.append({"case": code, "from": old.split, "to": new.split})
        for key in sorted(set(old.findings) | set(new.findings)):
            a, b = old.findings.get(key), new.findings.get(key)
            if a and b and a.get("revision") == b.get("revision"):
                continue
            change = "added" if a is None else "removed" if b is None else "changed"
            reference_changes.append(
                {
                    "case": code,
                    "ref_key": key,
                    "change": change,
                    "old_revision": a.get("revision") if a else None,
                    "new_revision": b.get("revision") if b else None,
                    "arbitration_id": _arbitration_id(b),
                    "detail": _detail(a, b) if a and b else (b or a or {}).get("status", ""),
                }
            )
        old_rev = (old.labels or {}).get("revision")
        new_rev = (new.labels or {}).get("revision")
        if old_rev != new_rev:
            old_values = (old.labels or {}).get("values") or {}
            new_values = (new.labels or {}).get("values") or {}
            label_changes.append(
                {
                    "case": code,
                    "old_revision": old_rev,
                    "new_revision": new_rev,
                    "arbitration_id": _arbitration_id(new.labels),
                    "fields": sorted(
                        k
                        for k in set(old_values) | set(new_values)
                        if old_values.get(k) != new_values.get(k)
                    ),
                }
            )
    return {
        "parent": parent_version,
        "cases_added": added,
        "cases_retired": retired,
        "reference_changes": reference_changes,
        "label_changes": label_changes,
        "split_changes": split_changes,
    }


def is_empty(log: dict) -> bool:
    return not any(
        log.get(k)
        for k in (
            "cases_added",
            "cases_retired",
            "reference_changes",
            "label_changes",
            "split_changes",
        )
    )
