"""Patient-level, stratified, seeded splits. Plain Python: no Django.

Rules:

- A patient is the unit: all of a patient's cases go to one split, so a patient
  never spans two splits (the first thing a reviewer checks for leakage).
- Strata are (site, manufacturer, case label). A patient whose cases fall into
  several strata belongs to the stratum of most of them (ties: the smallest key).
- Within a stratum, patients are shuffled with `random.Random(seed)` after a
  sort by id, so the same input and seed give the same splits on any machine,
  whatever order the rows came in.
- Each patient goes to the split furthest below its target number of cases in
  that stratum (target = ratio x cases of the stratum); ties go to the split
  listed first. This keeps every stratum's proportions close to the ratios.
- `fixed` pins patients to a split (a child version keeps its parent's splits,
  so a correction never moves a case from test into train).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SPLITS = ("train", "validation", "test")
DEFAULT_RATIOS = {"train": 0.7, "validation": 0.15, "test": 0.15}


@dataclass(frozen=True)
class Item:
    case_id: str
    patient_id: str
    site: str = ""
    manufacturer: str = ""
    label: str = ""

    @property
    def stratum(self) -> tuple[str, str, str]:
        return (self.site, self.manufacturer, self.label)


class SplitError(ValueError):
    pass


def normalise_ratios(ratios: Mapping[str, float] | None) -> dict[str, float]:
    """Ratios for every split, summing to 1. Unknown names or negatives are refused."""
    ratios = dict(ratios or DEFAULT_RATIOS)
    unknown = set(ratios) - set(SPLITS)
    if unknown:
        raise SplitError(f"unknown splits: {', '.join(sorted(unknown))}")
    values = {s: float(ratios.get(s, 0.0)) for s in SPLITS}
    if any(v < 0 for v in values.values()):
        raise SplitError("ratios cannot be negative")
    total = sum(values.values())
    if total <= 0:
        raise SplitError("at least one split needs a positive ratio")
    return {s: v / total for s, v in values.items()}


def assign(
    items: Iterable[Item],
    *,
    ratios: Mapping[str, float] | None = None,
    seed: int = 1,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """{case_id: split} for every item."""
    ratios = normalise_ratios(ratios)
    fixed = dict(fixed or {})
    bad = {s for s in fixed.values() if s not in SPLITS}
    if bad:
        raise SplitError(f"unknown splits: {', '.join(sorted(bad))}")
    by_patient: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_patient[item.patient_id].append(item)

    def patient_stratum(pid: str) -> tuple[str, str, str]:
        counts = Counter(i.stratum for i in by_patient[pid])
        return min(counts, key=lambda s: (-counts[s], s))

    strata: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for pid in sorted(by_patient):
        strata[patient_stratum(pid)].append(pid)

    rng = random.Random(seed)
    out: dict[str, str] = {}
    for stratum in sorted(strata):
        patients = strata[stratum]
        total = sum(len(by_patient[p]) for p in patients)
        counts = dict.fromkeys(SPLITS, 0)
        # pinned patients first: they count against the targets
        free = []
        for pid in patients:
            if pid in fixed:
                counts[fixed[pid]] += len(by_patient[pid])
                for item in by_patient[pid]:
                    out[item.case_id] = fixed[pid]
            else:
                free.append(pid)
        rng.shuffle(free)
        for pid in free:
            n = len(by_patient[pid])
            split = max(
                SPLITS,
                key=lambda s: (
                    (ratios[s] * total - counts[s], -SPLITS.index(s))
                    if ratios[s] > 0
                    else (float("-inf"), 0)
                ),
            )
            counts[split] += n
            for item in by_patient[pid]:
                out[item.case_id] = split
    return out


def leaks(items: Iterable[Item], assignment: Mapping[str, str]) -> dict[str, set[str]]:
    """Patients whose cases sit in more than one split: {patient: {splits}} (empty is good)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for item in items:
        seen[item.patient_id].add(assignment[item.case_id])
    return {p: s for p, s in seen.items() if len(s) > 1}
