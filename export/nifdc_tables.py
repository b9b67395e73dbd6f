"""The package's tables (EXPORT_SPEC.md "Key tables"), one function per file.

Each table is a header and rows; `TABLES` lists them with their package path,
and dictionary.py describes every column of every one of them. Rows are
sorted by their ids, so the files do not depend on database order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from export.model import PackageInput

Table = tuple[list[str], list[list[Any]]]


# Measurement columns (export/model.py states the units), added after the columns
# EXPORT_SPEC.md lists so that readers of the earlier layout find theirs in place:
# reader_reads.csv keeps long_axis_mm, short_axis_mm, volume_mm3 where the spec
# puts them and appends the rest after tool_version; the reference tables append
# all of them after assist_models (reference_excluded.csv keeps exclusion_reason
# last).
MEASURED = ["mean_diameter_mm", "mean_hu", "max_hu", "axes_from"]
REFERENCE_MEASURED = [
    "long_axis_mm", "short_axis_mm", "mean_diameter_mm", "volume_mm3", "mean_hu", "max_hu",
    "axes_from",
]  # fmt: skip


def attribute_keys(inp: PackageInput) -> list[str]:
    """Every attribute of every finding type, in schema order, once."""
    keys: list[str] = []
    definition = inp.schema.get("definition", inp.schema)
    for ftype in definition.get("finding_types", []):
        for attr in ftype.get("attributes", []):
            if attr["key"] not in keys:
                keys.append(attr["key"])
    return keys


def case_field_keys(inp: PackageInput) -> list[str]:
    definition = inp.schema.get("definition", inp.schema)
    return [f["key"] for f in definition.get("case_fields", [])]


def _first_series(case):
    return case.series[0] if case.series else None


def cases(inp: PackageInput) -> Table:
    header = [
        "case_id", "patient_pseudo_id", "study_uid", "series_uid", "site_id",
        "acquisition_year", "manufacturer", "model", "kvp", "kernel",
        "slice_thickness_mm", "pixel_spacing_mm", "contrast", "age_band", "sex",
        "split", "n_readers", "n_reference_findings", "case_label",
        "reference_standard_type", "qc_status", "image_sha256", "retired", "retired_reason",
    ]  # fmt: skip
    readers: dict[str, set[str]] = {}
    for read in inp.reads:
        readers.setdefault(read.case_id, set()).add(read.reader_pseudo_id)
    n_ref: dict[str, int] = {}
    for ref in inp.reference:
        if not ref.excluded:
            n_ref[ref.case_id] = n_ref.get(ref.case_id, 0) + 1
    rows = []
    for case in sorted(inp.cases, key=lambda c: c.case_id):
        for s in case.series or (None,):
            rows.append(
                [
                    case.case_id, case.patient_pseudo_id, s.study_uid if s else "",
                    s.series_uid if s else "", case.site_id, case.acquisition_year,
                    s.manufacturer if s else "", s.model if s else "", s.kvp if s else None,
                    s.kernel if s else "", s.slice_thickness_mm if s else None,
                    list(s.pixel_spacing_mm) if s and s.pixel_spacing_mm else None,
                    s.contrast if s else "", case.age_band, case.sex, case.split,
                    len(readers.get(case.case_id, ())), n_ref.get(case.case_id, 0),
                    case.case_label, case.reference_standard_type, case.qc_status,
                    series_sha256(s) if s else "", case.retired, case.retired_reason,
                ]
            )  # fmt: skip
    return header, rows


def series_sha256(series) -> str:
    """One hash for a series: sha256 over its instances' hashes in slice order."""
    import hashlib

    digest = hashlib.sha256()
    for inst in sorted(series.instances, key=lambda i: i.slice_index):
        digest.update(inst.sha256.encode("ascii"))
    return digest.hexdigest()


def splits(inp: PackageInput) -> Table:
    rows = [
        [c.case_id, c.patient_pseudo_id, c.split or "unassigned"]
        for c in sorted(inp.cases, key=lambda c: c.case_id)
    ]
    return ["case_id", "patient_pseudo_id", "split"], rows


def sites(inp: PackageInput) -> Table:
    devices: dict[str, set[tuple[str, str]]] = {}
    counts: dict[str, int] = {}
    for case in inp.cases:
        counts[case.site_id] = counts.get(case.site_id, 0) + 1
        for s in case.series:
            devices.setdefault(case.site_id, set()).add((s.manufacturer, s.model))
    rows = []
    for site in sorted(counts):
        facts = inp.sites.get(site, {})
        makes = sorted(f"{m} {n}".strip() for m, n in devices.get(site, ()))
        rows.append([site, facts.get("site_type", ""), counts[site], makes])
    return ["site_id", "site_type", "n_cases", "devices"], rows


def reader_reads(inp: PackageInput) -> Table:
    attrs = attribute_keys(inp)
    header = [
        "read_id", "case_id", "series_uid", "reader_pseudo_id", "phase", "started_at",
        "submitted_at", "finding_id", "finding_type", "x_mm", "y_mm", "z_mm",
        "long_axis_mm", "short_axis_mm", "volume_mm3",
        *[f"attr_{a}" for a in attrs],
        "confidence", "source", "model", "model_sha256", "tool_version",
        *MEASURED,
    ]  # fmt: skip
    rows = []
    for read in sorted(inp.reads, key=lambda r: (r.case_id, r.phase, r.read_id)):
        base = [
            read.read_id, read.case_id, read.series_uid, read.reader_pseudo_id, read.phase,
            read.started_at, read.submitted_at,
        ]  # fmt: skip
        if not read.findings:  # a read that found nothing is a row too
            empty = [""] * (len(header) - len(base) - len(MEASURED) - 1)
            rows.append(base + empty + [read.tool_version] + [""] * len(MEASURED))
            continue
        for f in sorted(read.findings, key=lambda f: f.finding_id):
            x, y, z = f.centre_mm or (None, None, None)
            model = f"{f.model_name} {f.model_version}".strip()
            rows.append(
                base
                + [f.finding_id, f.finding_type, x, y, z, f.long_axis_mm, f.short_axis_mm]
                + [f.volume_mm3, *[f.attributes.get(a) for a in attrs]]
                + [f.confidence, f.source, model, f.model_sha256, read.tool_version]
                + [f.mean_diameter_mm, f.mean_hu, f.max_hu, f.axes_from]
            )
    return header, rows


def _reference(inp: PackageInput, excluded: bool) -> Table:
    attrs = attribute_keys(inp)
    header = [
        "seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "ref_finding_id",
        "case_id", "revision", "finding_type", *[f"attr_{a}" for a in attrs],
        "n_readers_marked", "reader_ids", "decision", "arbitration_id", "seg_ref",
        "origin", "n_model_marks", "assist_models", *REFERENCE_MEASURED,
    ]  # fmt: skip
    if excluded:
        header.append("exclusion_reason")
    from export.fundus import applies as photographs  # fundus imports this module
    from export.fundus_seg import has_area

    photo = photographs(inp)
    rows = []
    for ref in sorted(inp.reference, key=lambda r: (r.series_uid, r.ref_finding_id)):
        if ref.excluded != excluded:
            continue
        x, y, z = ref.centre_mm or (None, None, None)
        row = [
            ref.series_uid, x, y, z, ref.diameter_mm, ref.ref_finding_id, ref.case_id,
            ref.revision, ref.finding_type, *[ref.attributes.get(a) for a in attrs],
            len(ref.reader_ids), sorted(ref.reader_ids), ref.decision, ref.arbitration_id,
            seg_ref(ref.series_uid)
            if ref.geometry and not excluded and (not photo or has_area(ref.geometry))
            else "",
            ref.origin, ref.model_marks, [_model_cell(m) for m in ref.models],
            ref.long_axis_mm, ref.short_axis_mm, ref.mean_diameter_mm, ref.volume_mm3,
            ref.mean_hu, ref.max_hu, ref.axes_from,
        ]  # fmt: skip
        if excluded:
            row.append(ref.exclusion_reason)
        rows.append(row)
    return header, rows


def _model_cell(model) -> str:
    text = model.label
    return f"{text} sha256:{model.weights_sha256}" if model.weights_sha256 else text


def seg_ref(series_uid: str) -> str:
    return f"annotations/dicom/SEG/reference/{series_uid}.dcm"


def reference_standard(inp: PackageInput) -> Table:
    return _reference(inp, excluded=False)


def reference_excluded(inp: PackageInput) -> Table:
    return _reference(inp, excluded=True)


def case_labels(inp: PackageInput) -> Table:
    fields = case_field_keys(inp)
    extra = sorted(
        {k for r in inp.reads for k in r.case_labels}
        | {k for v in inp.case_labels.values() for k in v} - set(fields)
    )
    fields += extra
    header = ["case_id", "source", "read_id", "reader_pseudo_id", "phase", *fields]
    rows = []
    for read in sorted(inp.reads, key=lambda r: (r.case_id, r.phase, r.read_id)):
        if read.case_labels:
            rows.append(
                [read.case_id, "read", read.read_id, read.reader_pseudo_id, read.phase]
                + [read.case_labels.get(k) for k in fields]
            )
    for case_id in sorted(inp.case_labels):
        labels = inp.case_labels[case_id]
        rows.append([case_id, "adjudicated", "", "", ""] + [labels.get(k) for k in fields])
    return header, rows


def arbitration_log(inp: PackageInput) -> Table:
    header = [
        "dispute_id", "case_id", "cluster_id", "trigger", "reader_votes",
        "arbitrator_pseudo_id", "information_shown", "decision", "reason_code",
        "reason_text", "decided_at",
    ]  # fmt: skip
    rows = [
        [
            a.dispute_id,
            a.case_id,
            a.cluster_id,
            a.trigger,
            a.reader_votes,
            a.arbitrator_pseudo_id,
            a.information_shown,
            a.decision,
            a.reason_code,
            a.reason_text,
            a.decided_at,
        ]  # fmt: skip
        for a in sorted(inp.arbitration_log, key=lambda a: (a.case_id, a.dispute_id))
    ]
    return header, rows


def roster(inp: PackageInput) -> Table:
    header = [
        "pseudo_id", "role", "specialty", "title_band", "experience_band", "site_type",
        "training_date",
    ]  # fmt: skip
    rows = [
        [
            r.pseudo_id,
            r.role,
            r.specialty,
            r.title_band,
            r.experience_band,
            r.site_type,
            r.training_date,
        ]  # fmt: skip
        for r in sorted(inp.roster, key=lambda r: (r.role, r.pseudo_id))
    ]
    return header, rows


def qualification_results(inp: PackageInput) -> Table:
    header = [
        "pseudo_id", "test_set", "date", "sensitivity", "fp_per_case", "kappa_vs_reference",
        "threshold", "passed", "attempt",
    ]  # fmt: skip
    rows = [
        [q.pseudo_id, q.test_set, q.date, q.sensitivity, q.fp_per_case, q.kappa]
        + [q.threshold, q.passed, q.attempt]
        for q in sorted(inp.qualification, key=lambda q: (q.pseudo_id, q.attempt))
    ]
    return header, rows


def image_qc(inp: PackageInput) -> Table:
    header = ["case_id", "series_uid", "rule", "status", "value", "message"]
    rows = [
        [q.case_id, q.series_uid, q.rule, q.status, q.value, q.message]
        for q in sorted(inp.qc, key=lambda q: (q.case_id, q.series_uid, q.rule))
    ]
    return header, rows


def images_index(inp: PackageInput) -> Table:
    header = ["case_id", "series_uid", "sop_instance_uid", "slice_index", "path", "sha256"]
    rows = []
    for case, s in sorted(inp.series(), key=lambda cs: (cs[0].case_id, cs[1].series_uid)):
        for i in sorted(s.instances, key=lambda i: i.slice_index):
            rows.append(
                [case.case_id, s.series_uid, i.sop_instance_uid, i.slice_index]
                + [image_path(case.case_id, s.series_uid, i.sop_instance_uid), i.sha256]
            )
    return header, rows


def image_path(case_id: str, series_uid: str, sop_uid: str) -> str:
    return f"images/{case_id}/{series_uid}/{sop_uid}.dcm"


TABLES: dict[str, Callable[[PackageInput], Table]] = {
    "tables/cases.csv": cases,
    "tables/splits.csv": splits,
    "tables/sites.csv": sites,
    "annotations/reader_reads.csv": reader_reads,
    "annotations/reference_standard.csv": reference_standard,
    "annotations/reference_excluded.csv": reference_excluded,
    "annotations/case_labels.csv": case_labels,
    "annotations/arbitration_log.csv": arbitration_log,
    "people/roster.csv": roster,
    "people/qualification_results.csv": qualification_results,
    "qc/image_qc.csv": image_qc,
}


def write_tables(out, inp: PackageInput, names: Iterable[str] | None = None) -> None:
    for rel in names or TABLES:
        header, rows = TABLES[rel](inp)
        out.write_csv(rel, header, rows)


def headers(inp: PackageInput) -> dict[str, Sequence[str]]:
    return {rel: fn(inp)[0] for rel, fn in TABLES.items()}
