"""The full agreement report of a set of cases, from plain data.

Input: `Field`s (the label schema's attributes worth measuring), `Reader`s,
`CaseData` (each case's reads as qc.matching marks, case-level answers, the
reference standard when it exists, its grid and strata) and `Settings`.
Output: a JSON-ready dict (its schema is shipped with the app as
report.schema.json). Every coefficient comes as {"value", "low", "high", "n"}:
the estimate, its percentile case-bootstrap interval and the units behind it.

Units: a case for case-level answers; a cluster (readers' marks of one finding
under the match rule) for finding attributes and shapes; a (reader, case) for
detection against the reference. All are summed into cases before the
bootstrap, so a case is always resampled whole.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qc.agreement import categorical as cat
from qc.agreement import continuous as cont
from qc.agreement import detection as det
from qc.agreement import shapes as shp
from qc.agreement.stats import Additive, bootstrap_weights, estimate, per_case, safe_divide
from qc.matching import Grid, Mark
from qc.raster import overlap, rasterise

REPORT_VERSION = 1
CATEGORICAL_KINDS = ("enum", "ordinal", "boolean")
SIZE_BANDS = ((6.0, "<6 mm"), (10.0, "6-10 mm"), (20.0, "10-20 mm"), (math.inf, ">=20 mm"))
CASE_STRATA = ("site", "manufacturer", "thickness_band")


@dataclass(frozen=True)
class Field:
    """An attribute to measure. `finding_type` is "" for a case-level field.
    `categories` orders enum values (ordinal scales use their numbers)."""

    key: str
    kind: str
    label: str = ""
    finding_type: str = ""
    categories: tuple = ()
    unit: str = ""
    label_zh: str = ""  # the schema's zh-hans label, shown to Chinese users
    outside_scale: tuple = ()  # answers off the scale (e.g. "ungradable"), see _outside
    derived: bool = False  # computed on the server from the read (never typed)

    @property
    def level(self) -> str:
        return {"ordinal": "ordinal", "number": "interval"}.get(self.kind, "nominal")

    @property
    def name(self) -> str:
        return f"{self.finding_type}.{self.key}" if self.finding_type else self.key


@dataclass(frozen=True)
class Reader:
    id: str
    label: str
    experience_band: str = "unknown"


@dataclass(frozen=True)
class CaseData:
    id: str
    reads: Mapping[str, Sequence[Mark]]  # reader id -> marks (submitted reads only)
    labels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reference: Sequence[Mark] | None = None  # None: no reference standard yet
    grid: Grid | None = None
    strata: Mapping[str, str] = field(default_factory=dict)
    week: str = ""


@dataclass(frozen=True)
class LesionRule:
    """How lesion marks on 2-D photographs are matched between readers, per
    finding type (fundus lesions differ in size and in how they are drawn):

    - point types (microaneurysms): centres within `point_radius_px` pixels;
    - region types (polygons, boxes): `region_rule` "overlap_iou" (IoU of the
      rasterised outlines at least `region_threshold`, 0-1) or
      "centre_distance" (centres within `region_threshold` pixels).

    Distances are in image pixels, converted to the grid's mm per case (the
    pixel spacing, 1 when the photograph has none), because fundus cameras
    rarely record a calibrated spacing."""

    point_radius_px: float = 10.0
    region_rule: str = "overlap_iou"
    region_threshold: float = 0.3
    point_types: tuple = ()
    region_types: tuple = ()

    def rule_for(self, finding_type: str, grid: Grid | None) -> tuple[str, float]:
        px = float(np.mean(grid.pixel_spacing)) if grid is not None else 1.0
        if finding_type in self.point_types or self.region_rule == "centre_distance":
            radius = (
                self.point_radius_px if finding_type in self.point_types else self.region_threshold
            )
            return "centre_distance", radius * px
        return self.region_rule, self.region_threshold

    def as_dict(self) -> dict:
        return {
            "point_radius_px": self.point_radius_px,
            "region_rule": self.region_rule,
            "region_threshold": self.region_threshold,
            "point_types": list(self.point_types),
            "region_types": list(self.region_types),
        }


PLANE = Grid(positions=((0.0, 0.0, 0.0),), patient_space=False)


@dataclass(frozen=True)
class Settings:
    rule: str = "centre_distance"
    threshold: float = 5.0
    replicates: int = 1000
    seed: int = 1971
    confidence: float = 0.95
    tolerance_mm: float = 1.0
    stratify_by: str = ""  # a case stratum key: the bootstrap resamples within it
    size_attribute: str = ""  # number attribute (mm) for size bands; "" = first mm number
    max_points: int = 2000  # Bland-Altman points kept for the plot
    shapes: bool = True  # Dice/IoU/HD95/ASSD/NSD/STAPLE (rasterising dominates the time)
    lesions: LesionRule | None = None  # per-type matching on 2-D photographs; None: `rule`
    outline_types: tuple = ()  # one outline per read (optic disc, cup): Dice/IoU per pair


@dataclass
class _Cluster:
    case: int
    finding_type: str
    marks: dict[str, Mark]  # reader id -> mark
    size_mm: float | None = None


def _value_code(f: Field, value: Any) -> float:
    if value is None or value == "" or isinstance(value, list | dict):
        return math.nan
    if f.outside_scale and value in f.outside_scale:
        return math.nan
    if f.kind == "boolean":
        return 1.0 if value in (True, "true", "yes", 1) else 0.0
    if f.kind == "enum":
        return float(f.categories.index(value)) if value in f.categories else math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _size_band(size: float | None) -> str:
    if size is None or not math.isfinite(size):
        return "unknown"
    return next(label for upper, label in SIZE_BANDS if size < upper)


class _Builder:
    def __init__(self, fields, readers, cases, settings):
        self.fields: list[Field] = list(fields)
        self.readers: list[Reader] = list(readers)
        self.cases: list[CaseData] = list(cases)
        self.s: Settings = settings
        self.rid = [r.id for r in self.readers]
        self.n = len(self.cases)
        labels = (
            [c.strata.get(self.s.stratify_by, "unknown") for c in self.cases]
            if self.s.stratify_by
            else None
        )
        self.weights = bootstrap_weights(self.n, self.s.replicates, self.s.seed, labels)
        self._sub_weights: dict[tuple, np.ndarray] = {}

    # -- helpers ------------------------------------------------------------------

    def est(self, additive: Additive, n: int, cases: np.ndarray | None = None) -> dict:
        if cases is None:
            return estimate(additive, self.weights, n, self.s.confidence)
        key = tuple(cases.tolist())
        if key not in self._sub_weights:
            seed = self.s.seed + len(self._sub_weights) + 1
            self._sub_weights[key] = bootstrap_weights(len(cases), self.s.replicates, seed)
        return estimate(additive, self._sub_weights[key], n, self.s.confidence, cases)

    def cluster_all(self) -> None:
        self.clusters: list[_Cluster] = []
        self.case_clusters: list[list] = []
        size_key = self.s.size_attribute or next(
            (
                f.key
                for f in self.fields
                if f.finding_type and f.kind == "number" and f.unit == "mm"
            ),
            "",
        )
        for ci, case in enumerate(self.cases):
            marks = [
                m
                for reader in self.rid
                for m in case.reads.get(reader, ())
                if m.finding_type not in self.s.outline_types
            ]
            found = self.clusters_of(marks, case.grid)
            self.case_clusters.append(found)
            for c in found:
                by_reader = {m.reader: m for m in c.marks}
                sizes = [
                    _value_code(Field(size_key, "number"), m.attributes.get(size_key))
                    for m in c.marks
                ]
                sizes = [v for v in sizes if math.isfinite(v)]
                self.clusters.append(
                    _Cluster(
                        ci, c.finding_type, by_reader, float(np.mean(sizes)) if sizes else None
                    )
                )
        self.cluster_case = np.asarray([c.case for c in self.clusters], dtype=int)

    def clusters_of(self, marks: Sequence[Mark], grid: Grid | None) -> list:
        """The case's clusters: under the protocol's rule, or per finding type
        under the lesion rule on 2-D photographs."""
        if self.s.lesions is None:
            return det.clusters_of_case(marks, self.s.rule, self.s.threshold, grid)
        found = []
        for finding_type, group in _by_type(marks).items():
            rule, threshold = self.s.lesions.rule_for(finding_type, grid)
            found += det.clusters_of_case(group, rule, threshold, grid or PLANE)
        found.sort(key=lambda c: (c.finding_type, c.centre_mm or (math.inf,) * 3, c.key))
        return found

    def against_reference(self, reference, marks, grid) -> tuple[int, int, int]:
        skip = self.s.outline_types
        if self.s.lesions is None:
            reference = [m for m in reference if m.finding_type not in skip]
            marks = [m for m in marks if m.finding_type not in skip]
            return det.against_reference(reference, marks, self.s.rule, self.s.threshold, grid)
        ref, own = _by_type(reference, skip), _by_type(marks, skip)
        tp = fn = fp = 0
        for finding_type in sorted(set(ref) | set(own)):
            rule, threshold = self.s.lesions.rule_for(finding_type, grid)
            t, n, p = det.against_reference(
                ref.get(finding_type, []), own.get(finding_type, []), rule, threshold, grid or PLANE
            )
            tp, fn, fp = tp + t, fn + n, fp + p
        return tp, fn, fp

    def ratings(self, f: Field, units: Sequence[_Cluster] | None = None) -> np.ndarray:
        """units x readers codes (NaN = not rated) of one field."""
        if not f.finding_type:
            return np.asarray(
                [
                    [
                        _value_code(f, c.labels[r].get(f.key)) if r in c.labels else math.nan
                        for r in self.rid
                    ]
                    for c in self.cases
                ],
                dtype=float,
            ).reshape(self.n, len(self.rid))
        units = self.clusters if units is None else units
        rows = [
            [
                _value_code(f, u.marks[r].attributes.get(f.key)) if r in u.marks else math.nan
                for r in self.rid
            ]
            for u in units
            if u.finding_type == f.finding_type
        ]
        return np.asarray(rows, dtype=float).reshape(len(rows), len(self.rid))

    def unit_cases(self, f: Field) -> np.ndarray:
        if not f.finding_type:
            return np.arange(self.n)
        return np.asarray(
            [u.case for u in self.clusters if u.finding_type == f.finding_type], dtype=int
        )

    # -- categorical and continuous fields ------------------------------------------

    def categorical(self, f: Field, r: np.ndarray, idx: np.ndarray) -> dict:
        cats = _categories(f)
        pairable = int((np.isfinite(r).sum(axis=1) >= 2).sum()) if len(r) else 0
        kw = {"case_index": idx, "n_cases": self.n}
        weights = "quadratic" if f.kind == "ordinal" else None
        out = {
            "percent_agreement": self.est(cat.percent_agreement_additive(r, **kw), pairable),
            "fleiss_kappa": self.est(cat.fleiss_kappa_additive(r, categories=cats, **kw), pairable),
            "krippendorff_alpha": self.est(
                cat.krippendorff_alpha_additive(r, f.level, **kw), pairable
            ),
            "gwet_ac": self.est(cat.gwet_ac_additive(r, weights, categories=cats, **kw), pairable),
            "gwet_form": "AC2 (quadratic)" if weights else "AC1",
        }
        if weights:
            ac1 = cat.gwet_ac_additive(r, None, categories=cats, **kw)
            out["gwet_ac1"] = self.est(ac1, pairable)
        kappa, se = cat.fleiss_kappa(r, categories=cats) if pairable else (math.nan, math.nan)
        out["fleiss_kappa"]["se"] = None if not math.isfinite(se) else round(se, 6)
        pairs = []
        wnames = (None, "linear", "quadratic") if f.kind == "ordinal" else (None,)
        per_weight: dict[str, list[Additive]] = {w or "unweighted": [] for w in wnames}
        units = 0
        for (i, a), (j, b) in itertools.combinations(enumerate(self.rid), 2):
            both = np.isfinite(r[:, i]) & np.isfinite(r[:, j]) if len(r) else np.zeros(0, bool)
            n_both = int(both.sum())
            if not n_both:
                continue
            units += n_both
            entry = {"a": a, "b": b, "n": n_both}
            for wname in wnames:
                add = cat.cohen_kappa_additive(r[:, i], r[:, j], wname, cats, **kw)
                entry[f"kappa_{wname or 'unweighted'}"] = self.est(add, n_both)
                per_weight[wname or "unweighted"].append(add)
            pairs.append(entry)
        out["pairwise"] = pairs
        # Cohen's kappa averaged over the reader pairs (Light's kappa for the
        # unweighted form), with a case bootstrap of the average.
        out["kappa_mean"] = {
            name: {**self.est(_mean_of(adds), units), "pairs": len(adds)}
            for name, adds in per_weight.items()
        }
        return out

    def outside(self, f: Field) -> dict:
        """Answers off the scale ("ungradable"): left out of the field's other
        figures; here their counts and the agreement on gradable vs not."""
        values = [
            [c.labels[r].get(f.key) if r in c.labels else None for r in self.rid]
            for c in self.cases
        ]
        r = np.asarray(
            [
                [
                    1.0
                    if v in f.outside_scale
                    else (0.0 if math.isfinite(_value_code(f, v)) else math.nan)
                    for v in row
                ]
                for row in values
            ],
            dtype=float,
        ).reshape(self.n, len(self.rid))
        binary = np.asarray([0.0, 1.0])
        pairable = int((np.isfinite(r).sum(axis=1) >= 2).sum())
        flagged = np.nan_to_num(r, nan=0.0)
        rated = np.isfinite(r).sum(axis=1)
        pairs = []
        for (i, a), (j, b) in itertools.combinations(enumerate(self.rid), 2):
            n_both = int((np.isfinite(r[:, i]) & np.isfinite(r[:, j])).sum())
            if n_both:
                add = cat.cohen_kappa_additive(r[:, i], r[:, j], None, binary)
                pairs.append({"a": a, "b": b, "n": n_both, "kappa": self.est(add, n_both)})
        return {
            "values": list(f.outside_scale),
            "handling": "excluded",
            "ratings": {
                str(v): int(sum(x == v for row in values for x in row)) for v in f.outside_scale
            },
            "cases_any": int((flagged.sum(axis=1) > 0).sum()),
            "cases_all": int(((flagged.sum(axis=1) == rated) & (rated > 0)).sum()),
            "percent_agreement": self.est(cat.percent_agreement_additive(r), pairable),
            "fleiss_kappa": self.est(cat.fleiss_kappa_additive(r, categories=binary), pairable),
            "gwet_ac1": self.est(cat.gwet_ac_additive(r, None, categories=binary), pairable),
            "pairwise": pairs,
        }

    def continuous(self, f: Field, r: np.ndarray, idx: np.ndarray) -> dict:
        kw = {"case_index": idx, "n_cases": self.n}
        complete = cont.complete_rows(r)
        columns = "readers"
        matrix = r
        if int(complete.sum()) < 2 and len(r):
            # Readers differ from case to case: the ICC is taken over read order.
            finite = np.isfinite(r)
            k = int(finite.sum(axis=1).max())
            if k >= 2:
                matrix = np.full((len(r), k), np.nan)
                for u in range(len(r)):
                    vals = r[u][finite[u]]
                    if len(vals) == k:
                        matrix[u] = vals
                columns = "read order"
        n_complete = int(cont.complete_rows(matrix).sum()) if len(matrix) else 0
        out: dict[str, Any] = {
            "icc_columns": columns,
            "icc": {
                form: {
                    **self.est(cont.icc_additive(matrix, form, **kw), n_complete),
                    "name": cont.ICC_FORMS[form],
                }
                for form in ("ICC(2,1)", "ICC(2,k)", "ICC(1,1)", "ICC(3,1)")
            },
            "cv": self.est(cont.cv_additive(r, **kw), int((np.isfinite(r).sum(axis=1) >= 2).sum())),
            "krippendorff_alpha": self.est(
                cat.krippendorff_alpha_additive(r, "interval", **kw),
                int((np.isfinite(r).sum(axis=1) >= 2).sum()),
            ),
        }
        pairs, points = [], []
        pooled_a, pooled_b, pooled_idx = [], [], []
        for (i, a), (j, b) in itertools.combinations(enumerate(self.rid), 2):
            both = np.isfinite(r[:, i]) & np.isfinite(r[:, j])
            n_both = int(both.sum())
            if not n_both:
                continue
            parts = cont.bland_altman_additive(r[:, i], r[:, j], **kw)
            pairs.append(
                {"a": a, "b": b, "n": n_both, **{k: self.est(v, n_both) for k, v in parts.items()}}
            )
            pooled_a.append(r[both, i])
            pooled_b.append(r[both, j])
            pooled_idx.append(idx[both])
            for x, y in zip(r[both, i], r[both, j], strict=True):
                points.append([round(float((x + y) / 2), 4), round(float(x - y), 4)])
        out["bland_altman"] = pairs
        if pooled_a:
            a_all, b_all = np.concatenate(pooled_a), np.concatenate(pooled_b)
            parts = cont.bland_altman_additive(
                a_all, b_all, case_index=np.concatenate(pooled_idx), n_cases=self.n
            )
            out["bland_altman_pooled"] = {
                "n": len(a_all),
                **{k: self.est(v, len(a_all)) for k, v in parts.items()},
            }
            unit = np.column_stack([np.abs(a_all - b_all), np.ones(len(a_all))])
            stats = per_case(unit, np.concatenate(pooled_idx), self.n)
            out["mean_abs_difference"] = self.est(Additive(stats, _mean), len(a_all))
        else:
            out["bland_altman_pooled"] = None
            out["mean_abs_difference"] = None
        step = max(1, math.ceil(len(points) / self.s.max_points))
        out["points"] = points[::step]
        return out

    def field_block(self, f: Field) -> dict:
        r = self.ratings(f)
        idx = self.unit_cases(f)
        block = {
            "key": f.key,
            "name": f.name,
            "label": f.label or f.key,
            "label_zh": f.label_zh or f.label or f.key,
            "finding_type": f.finding_type,
            "kind": f.kind,
            "level": f.level,
            "unit": f.unit,
            "units": int(len(r)),
            "rated_by_two_or_more": int((np.isfinite(r).sum(axis=1) >= 2).sum()) if len(r) else 0,
            "derived": f.derived,
        }
        if f.outside_scale and not f.finding_type:
            block["outside_scale"] = self.outside(f)
        if f.kind == "number":
            block.update(self.continuous(f, r, idx))
        else:
            block.update(self.categorical(f, r, idx))
        return block

    # -- detection --------------------------------------------------------------------

    def detection(self) -> dict:
        n_r = len(self.rid)
        table = np.zeros((self.n, max(n_r, 1)))
        for ci, found in enumerate(self.case_clusters):
            table[ci] = det.lidc_table(found, n_r)
        self.lidc_stats = table
        by_type: dict[str, list[int]] = {}
        for u in self.clusters:
            row = by_type.setdefault(u.finding_type, [0] * max(n_r, 1))
            row[len(u.marks) - 1] += 1
        # Pairwise between readers.
        pair_keys = list(itertools.combinations(range(n_r), 2))
        pair_stats = np.zeros((self.n, len(pair_keys), 3))
        for ci, (case, found) in enumerate(zip(self.cases, self.case_clusters, strict=True)):
            for p, (i, j) in enumerate(pair_keys):
                a, b = self.rid[i], self.rid[j]
                if a in case.reads and b in case.reads:
                    pair_stats[ci, p] = det.pair_counts(found, a, b)
        self.pair_keys, self.pair_stats = pair_keys, pair_stats
        pairwise = []
        matrix = np.eye(n_r) if n_r else np.zeros((0, 0))
        for p, (i, j) in enumerate(pair_keys):
            stats = pair_stats[:, p, :]
            add = Additive(stats, _psa)
            n_cases = int(
                sum(self.rid[i] in c.reads and self.rid[j] in c.reads for c in self.cases)
            )
            e = self.est(add, n_cases)
            pairwise.append({"a": self.rid[i], "b": self.rid[j], "agreement": e, "cases": n_cases})
            value = e["value"] if e["value"] is not None else math.nan
            matrix[i, j] = matrix[j, i] = value
        self.psa_all = Additive(pair_stats.sum(axis=1), _psa)
        # Against the reference.
        ref_cases = [ci for ci, c in enumerate(self.cases) if c.reference is not None]
        vs = np.zeros((self.n, n_r, 4))  # tp, fn, fp, cases read
        for ci in ref_cases:
            case = self.cases[ci]
            for k, reader in enumerate(self.rid):
                if reader in case.reads:
                    tp, fn, fp = self.against_reference(
                        case.reference, case.reads[reader], case.grid
                    )
                    vs[ci, k] = (tp, fn, fp, 1)
        self.vs = vs
        per_reader = []
        for k, reader in enumerate(self.rid):
            stats = vs[:, k, :]
            read = int(stats[:, 3].sum())
            tp, fn, fp = (int(v) for v in stats[:, :3].sum(axis=0))
            per_reader.append(
                {
                    "reader": reader,
                    "cases": read,
                    "tp": tp,
                    "fn": fn,
                    "fp": fp,
                    "sensitivity": self.est(Additive(stats, _sensitivity), tp + fn),
                    "fp_per_case": self.est(Additive(stats, _fp_per_case), read),
                    "f1": self.est(Additive(stats, _f1), read),
                }
            )
        return {
            "rule": self.s.rule,
            "threshold": self.s.threshold,
            "by_type": self.lesion_types(),
            "clusters": len(self.clusters),
            "lidc_table": [
                {"readers": k + 1, "lesions": int(v)} for k, v in enumerate(table.sum(axis=0))
            ],
            "lidc_by_type": [
                {"finding_type": t, "counts": counts} for t, counts in sorted(by_type.items())
            ],
            "agreement": self.est(self.psa_all, self.n),
            "pairwise": pairwise,
            "matrix": [
                [None if not math.isfinite(v) else round(v, 6) for v in row] for row in matrix
            ],
            "reference_cases": len(ref_cases),
            "per_reader": per_reader,
        }

    def lesion_types(self) -> list[dict]:
        """Per finding type: the match rule, the LIDC-style counts, positive
        specific agreement between each reader pair (2 shared / (marks of a +
        marks of b), which is the pair's F1 taking either reader as the
        reference) pooled over pairs, and agreement on the type's presence per
        image (marked at least once or not, by every reader who read it)."""
        n_r = len(self.rid)
        listed = ()
        if self.s.lesions is not None:
            listed = self.s.lesions.point_types + self.s.lesions.region_types
        types = sorted({u.finding_type for u in self.clusters} | set(listed))
        out = []
        for t in types:
            pair_stats = np.zeros((self.n, len(self.pair_keys), 3))
            lidc = [0] * max(n_r, 1)
            presence = np.full((self.n, n_r), np.nan)
            marks = 0
            for ci, (case, found) in enumerate(zip(self.cases, self.case_clusters, strict=True)):
                typed = [c for c in found if c.finding_type == t]
                for p, (i, j) in enumerate(self.pair_keys):
                    if self.rid[i] in case.reads and self.rid[j] in case.reads:
                        pair_stats[ci, p] = det.pair_counts(typed, self.rid[i], self.rid[j])
                for c in typed:
                    lidc[len(set(c.readers)) - 1] += 1
                    marks += len(c.marks)
                for k, reader in enumerate(self.rid):
                    if reader in case.reads:
                        presence[ci, k] = float(
                            any(m.finding_type == t for m in case.reads[reader])
                        )
            pairwise = []
            for p, (i, j) in enumerate(self.pair_keys):
                stats = pair_stats[:, p, :]
                n_cases = int(
                    sum(self.rid[i] in c.reads and self.rid[j] in c.reads for c in self.cases)
                )
                if not n_cases:
                    continue
                shared, n_a, n_b = (int(v) for v in stats.sum(axis=0))
                pairwise.append(
                    {
                        "a": self.rid[i],
                        "b": self.rid[j],
                        "cases": n_cases,
                        "shared": shared,
                        "marks_a": n_a,
                        "marks_b": n_b,
                        "agreement": self.est(Additive(stats, _psa), n_cases),
                    }
                )
            if self.s.lesions is not None:
                rule, threshold = self.s.lesions.rule_for(t, None)
                unit = "px" if rule == "centre_distance" else "IoU"
            else:
                rule, threshold = self.s.rule, self.s.threshold
                unit = "mm" if rule == "centre_distance" else ""
            pairable = int((np.isfinite(presence).sum(axis=1) >= 2).sum())
            binary = np.asarray([0.0, 1.0])
            out.append(
                {
                    "finding_type": t,
                    "geometry": "point"
                    if self.s.lesions is not None and t in self.s.lesions.point_types
                    else "region",
                    "rule": rule,
                    "threshold": threshold,
                    "unit": unit,
                    "marks": marks,
                    "clusters": int(sum(lidc)),
                    "lidc_counts": lidc,
                    "agreement": self.est(Additive(pair_stats.sum(axis=1), _psa), self.n),
                    "pairwise": pairwise,
                    "presence": {
                        "cases_marked": int(np.nansum(np.nanmax(presence, axis=1, initial=0))),
                        "percent_agreement": self.est(
                            cat.percent_agreement_additive(presence), pairable
                        ),
                        "fleiss_kappa": self.est(
                            cat.fleiss_kappa_additive(presence, categories=binary), pairable
                        ),
                        "gwet_ac1": self.est(
                            cat.gwet_ac_additive(presence, None, categories=binary), pairable
                        ),
                    },
                }
            )
        return out

    # -- outlines (one per read: optic disc, optic cup) ------------------------------------

    def outlines(self) -> list[dict]:
        """Per outline type, per reader pair and case both outlined: Dice and IoU
        of the two outlines rasterised on the image grid (the read's first
        outline of the type counts, as for the cup-to-disc ratio)."""
        out = []
        for t in self.s.outline_types:
            rows, idx, pair_of = [], [], []
            one_only = 0
            for ci, case in enumerate(self.cases):
                masks = {}
                for reader, marks in case.reads.items():
                    first = next((m for m in marks if m.finding_type == t and m.shapes), None)
                    masks[reader] = rasterise(first.kind, first.shapes) if first else None
                for p, (i, j) in enumerate(self.pair_keys):
                    a, b = self.rid[i], self.rid[j]
                    if a not in masks or b not in masks:
                        continue
                    ma, mb = masks[a], masks[b]
                    if ma is None and mb is None:
                        continue
                    if ma is None or mb is None:
                        one_only += 1
                        continue
                    rows.append([overlap(ma, mb, "dice"), overlap(ma, mb, "iou"), 1.0])
                    idx.append(ci)
                    pair_of.append(p)
            values = np.asarray(rows, dtype=float).reshape(len(rows), 3)
            idx_a, pair_a = np.asarray(idx, dtype=int), np.asarray(pair_of, dtype=int)
            pairwise = []
            for p, (i, j) in enumerate(self.pair_keys):
                keep = pair_a == p
                if keep.any():
                    summary = self._overlap_summary(values[keep], idx_a[keep])
                    pairwise.append(
                        {"a": self.rid[i], "b": self.rid[j], "n": int(keep.sum()), **summary}
                    )
            out.append(
                {
                    "finding_type": t,
                    "pairs": len(rows),
                    "outlined_by_one_only": one_only,
                    **self._overlap_summary(values, idx_a),
                    "pairwise": pairwise,
                }
            )
        return out

    def _overlap_summary(self, values: np.ndarray, idx: np.ndarray) -> dict:
        """Mean Dice and IoU of (dice, iou, 1) rows summed into their cases."""
        out = {}
        for k, name in enumerate(("dice", "iou")):
            stats = per_case(np.column_stack([values[:, k], values[:, 2]]), idx, self.n)
            out[name] = self.est(Additive(stats, _mean), len(values))
        return out

    # -- shapes -------------------------------------------------------------------------

    def shapes(self) -> dict:
        rows, idx = [], []
        staple_rows = {r: [] for r in self.rid}
        for u in self.clusters if self.s.shapes else ():
            grid = self.cases[u.case].grid
            if grid is None:
                continue
            masks = {r: rasterise(m.kind, m.shapes) for r, m in u.marks.items() if m.shapes}
            masks = {r: m for r, m in masks.items() if m is not None}
            if len(masks) < 2:
                continue
            lo = np.min([m.origin for m in masks.values()], axis=0) - 1
            hi = np.max([m.stop for m in masks.values()], axis=0) + 1
            box = tuple(int(v) for v in hi - lo)
            dense = {r: m.placed(tuple(int(v) for v in lo), box) for r, m in masks.items()}
            spacing = (grid.slice_spacing, grid.pixel_spacing[0], grid.pixel_spacing[1])
            points = {r: shp.surface_points(m, spacing) for r, m in dense.items()}
            for a, b in itertools.combinations(sorted(dense), 2):
                c = shp.compare_points(points[a], points[b], self.s.tolerance_mm)
                rows.append(
                    [
                        shp.dice(dense[a], dense[b]),
                        shp.iou(dense[a], dense[b]),
                        c["hd95"],
                        c["assd"],
                        c["nsd"],
                    ]
                )
                idx.append(u.case)
            if len(dense) >= 2:
                order = sorted(dense)
                st = shp.staple_em([dense[r] for r in order])
                for r, se, sp in zip(order, st["sensitivity"], st["specificity"], strict=True):
                    staple_rows[r].append((se, sp))
        names = ("dice", "iou", "hd95_mm", "assd_mm", "nsd")
        out: dict[str, Any] = {"pairs": len(rows), "tolerance_mm": self.s.tolerance_mm}
        values = np.asarray(rows, dtype=float).reshape(len(rows), 5)
        for k, name in enumerate(names):
            col = values[:, k]
            ok = np.isfinite(col)
            unit = np.column_stack([np.where(ok, col, 0.0), ok.astype(float)])
            stats = per_case(unit, np.asarray(idx, dtype=int), self.n)
            out[name] = self.est(Additive(stats, _mean), int(ok.sum()))
        out["staple"] = [
            {
                "reader": r,
                "clusters": len(v),
                "sensitivity": round(float(np.mean([x[0] for x in v])), 6) if v else None,
                "specificity": round(float(np.mean([x[1] for x in v])), 6) if v else None,
            }
            for r, v in staple_rows.items()
        ]
        return out

    # -- strata and weeks ------------------------------------------------------------------

    def headline(self) -> tuple[Field | None, Field | None]:
        attr = next(
            (f for f in self.fields if f.finding_type and f.kind in CATEGORICAL_KINDS), None
        )
        label = next(
            (f for f in self.fields if not f.finding_type and f.kind in CATEGORICAL_KINDS), None
        )
        return attr, label

    def group_summary(self, cases: np.ndarray) -> dict:
        attr, label = self.headline()
        out = {"cases": int(len(cases))}
        out["detection_agreement"] = self.est(self.psa_all, int(len(cases)), cases)
        vs = self.vs.sum(axis=1)
        ref_n = int(vs[cases, 3].sum()) if len(cases) else 0
        out["sensitivity"] = self.est(Additive(vs, _sensitivity), ref_n, cases)
        for key, f in (("attribute_alpha", attr), ("label_alpha", label)):
            if f is None:
                out[key] = None
                continue
            r = self.ratings(f)
            add = cat.krippendorff_alpha_additive(r, f.level, self.unit_cases(f), self.n)
            mask = np.isin(self.unit_cases(f), cases)
            n_units = int((np.isfinite(r[mask]).sum(axis=1) >= 2).sum()) if len(r) else 0
            out[key] = self.est(add, n_units, cases)
        return out

    def strata(self) -> list[dict]:
        dims = []
        for dim in CASE_STRATA:
            values = [c.strata.get(dim, "unknown") or "unknown" for c in self.cases]
            groups = []
            for value in sorted(set(values)):
                cases = np.asarray([i for i, v in enumerate(values) if v == value], dtype=int)
                groups.append({"value": value, **self.group_summary(cases)})
            dims.append({"dimension": dim, "groups": groups})
        dims.append({"dimension": "finding_type", "groups": self.cluster_groups("finding_type")})
        dims.append({"dimension": "size_band", "groups": self.cluster_groups("size_band")})
        dims.append({"dimension": "experience_band", "groups": self.experience_groups()})
        return dims

    def cluster_groups(self, how: str) -> list[dict]:
        keyed = [
            (u.finding_type if how == "finding_type" else _size_band(u.size_mm), u)
            for u in self.clusters
        ]
        groups = []
        for value in sorted({k for k, _ in keyed}):
            units = [u for k, u in keyed if k == value]
            idx = np.asarray([u.case for u in units], dtype=int)
            share = np.asarray(
                [len(u.marks) / max(len(self.cases[u.case].reads), 1) for u in units]
            )
            stats = per_case(np.column_stack([share, np.ones(len(units))]), idx, self.n)
            entry = {
                "value": value,
                "clusters": len(units),
                "cases": int(len(set(idx.tolist()))),
                "share_of_readers": self.est(Additive(stats, _mean), len(units)),
            }
            types = {u.finding_type for u in units}
            attr = next(
                (f for f in self.fields if f.finding_type in types and f.kind in CATEGORICAL_KINDS),
                None,
            )
            if attr is not None:
                r = self.ratings(attr, units)
                ui = np.asarray([u.case for u in units if u.finding_type == attr.finding_type])
                add = cat.krippendorff_alpha_additive(r, attr.level, ui, self.n)
                entry["attribute"] = attr.name
                entry["attribute_alpha"] = self.est(
                    add, int((np.isfinite(r).sum(axis=1) >= 2).sum()) if len(r) else 0
                )
            else:
                entry["attribute"] = None
                entry["attribute_alpha"] = None
            groups.append(entry)
        return groups

    def experience_groups(self) -> list[dict]:
        bands: dict[str, list[int]] = {}
        for k, r in enumerate(self.readers):
            bands.setdefault(r.experience_band or "unknown", []).append(k)
        groups = []
        for band, members in sorted(bands.items()):
            vs = self.vs[:, members, :].sum(axis=1)
            pairs = [p for p, (i, j) in enumerate(self.pair_keys) if i in members or j in members]
            ps = self.pair_stats[:, pairs, :].sum(axis=1)
            groups.append(
                {
                    "value": band,
                    "readers": [self.rid[k] for k in members],
                    "cases": int(vs[:, 3].astype(bool).sum()),
                    "sensitivity": self.est(Additive(vs, _sensitivity), int(vs[:, :2].sum())),
                    "f1": self.est(Additive(vs, _f1), int(vs[:, 3].sum())),
                    "detection_agreement": self.est(Additive(ps, _psa), len(pairs)),
                }
            )
        return groups

    def weekly(self) -> list[dict]:
        weeks = [c.week for c in self.cases]
        out = []
        for week in sorted({w for w in weeks if w}):
            cases = np.asarray([i for i, w in enumerate(weeks) if w == week], dtype=int)
            out.append({"week": week, **self.group_summary(cases)})
        return out

    # -- whole -----------------------------------------------------------------------------

    def build(self) -> dict:
        self.cluster_all()
        detection = self.detection()
        reads = sum(len(c.reads) for c in self.cases)
        findings = sum(len(m) for c in self.cases for m in c.reads.values())
        per_reader_reads = Counter(r for c in self.cases for r in c.reads)
        per_reader_marks = Counter(r for c in self.cases for r, m in c.reads.items() for _ in m)
        attr, label = self.headline()
        return {
            "report_version": REPORT_VERSION,
            "settings": {
                "match_rule": self.s.rule,
                "match_threshold": self.s.threshold,
                "bootstrap_replicates": self.s.replicates,
                "seed": self.s.seed,
                "confidence": self.s.confidence,
                "nsd_tolerance_mm": self.s.tolerance_mm,
                "stratified_by": self.s.stratify_by,
                "lesion_rule": self.s.lesions.as_dict() if self.s.lesions else None,
                "outline_types": list(self.s.outline_types),
            },
            "counts": {
                "cases": self.n,
                "readers": len(self.rid),
                "reads": reads,
                "findings": findings,
                "clusters": len(self.clusters),
            },
            "readers": [
                {
                    "id": r.id,
                    "label": r.label,
                    "experience_band": r.experience_band,
                    "reads": per_reader_reads.get(r.id, 0),
                    "findings": per_reader_marks.get(r.id, 0),
                }
                for r in self.readers
            ],
            "headline": {
                "attribute": attr.name if attr else None,
                "case_label": label.name if label else None,
            },
            "case_labels": [self.field_block(f) for f in self.fields if not f.finding_type],
            "attributes": [self.field_block(f) for f in self.fields if f.finding_type],
            "detection": detection,
            "shapes": self.shapes(),
            "outlines": self.outlines(),
            "strata": self.strata(),
            "weekly": self.weekly(),
        }


def _categories(f: Field) -> np.ndarray | None:
    """The category codes of a field: an enum's option indices, a boolean's 0/1,
    an ordinal's whole scale when the schema gives it (so weights count steps
    on the scale, not among the grades that happen to be used), else None
    (the values seen)."""
    if f.kind == "enum":
        return np.arange(len(f.categories), dtype=float)
    if f.kind == "boolean":
        return np.asarray([0.0, 1.0])
    if f.kind == "ordinal" and f.categories:
        return np.asarray(sorted(float(c) for c in f.categories))
    return None


def _mean_of(adds: Sequence[Additive]) -> Additive:
    """The mean of several coefficients over the same cases, as one Additive
    (their statistics side by side), so the average has a bootstrap interval."""
    widths = [a.stats.shape[1] for a in adds]
    bounds = np.cumsum([0, *widths])
    n_cases = adds[0].stats.shape[0] if adds else 0
    stats = np.concatenate([a.stats for a in adds], axis=1) if adds else np.zeros((n_cases, 0))

    def finish(s: np.ndarray) -> np.ndarray:
        if not adds:
            return np.full(s.shape[:-1], np.nan)
        values = np.stack(
            [
                np.asarray(a.finish(s[..., lo:hi]), dtype=float)
                for a, lo, hi in zip(adds, bounds[:-1], bounds[1:], strict=True)
            ],
            axis=-1,
        )
        ok = np.isfinite(values)
        return safe_divide(np.where(ok, values, 0.0).sum(axis=-1), ok.sum(axis=-1))

    return Additive(stats, finish)


def _by_type(marks: Sequence[Mark], skip: Sequence[str] = ()) -> dict[str, list[Mark]]:
    out: dict[str, list[Mark]] = {}
    for m in marks:
        if m.finding_type not in skip:
            out.setdefault(m.finding_type, []).append(m)
    return dict(sorted(out.items()))


def _psa(s: np.ndarray) -> np.ndarray:
    return safe_divide(2 * s[..., 0], s[..., 1] + s[..., 2])


def _sensitivity(s: np.ndarray) -> np.ndarray:
    return safe_divide(s[..., 0], s[..., 0] + s[..., 1])


def _fp_per_case(s: np.ndarray) -> np.ndarray:
    return safe_divide(s[..., 2], s[..., 3])


def _f1(s: np.ndarray) -> np.ndarray:
    return safe_divide(2 * s[..., 0], 2 * s[..., 0] + s[..., 1] + s[..., 2])


def _mean(s: np.ndarray) -> np.ndarray:
    return safe_divide(s[..., 0], s[..., 1])


def build_report(
    fields: Sequence[Field],
    readers: Sequence[Reader],
    cases: Sequence[CaseData],
    settings: Settings | None = None,
) -> dict:
    """The whole report (see the module docstring)."""
    return _Builder(fields, readers, cases, settings or Settings()).build()
