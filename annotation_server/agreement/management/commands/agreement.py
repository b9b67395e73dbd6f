"""python manage.py agreement --project SLUG [--json] [--out DIR]

Prints the project's agreement report (the same one the page shows, computed
now or taken from the cache while the reads are unchanged); --json prints it
as JSON; --out DIR also writes report.json, report.csv and every figure as
PNG and SVG into DIR."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation_server.agreement import services
from annotation_server.projects.models import Project


def _fmt(e) -> str:
    if not e or e.get("value") is None:
        return "-"
    if e.get("low") is None:
        return f"{e['value']:.3f}"
    return f"{e['value']:.3f} ({e['low']:.3f}-{e['high']:.3f})"


class Command(BaseCommand):
    help = "Print (and optionally write) a project's reader-agreement report."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--out", help="directory for report.json, report.csv and figures")

    def handle(self, *args, **opts):
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"No project {opts['project']!r}.")
        report = services.report_for(project)
        if opts["out"]:
            out = Path(opts["out"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
            (out / "report.csv").write_text(services.csv_text(report))
            for fmt in ("png", "svg"):
                for name, data in services.figures(report, fmt).items():
                    (out / f"{name}.{fmt}").write_bytes(data)
        if opts["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=1))
            return
        self.stdout.write(self._text(report))

    def _text(self, report: dict) -> str:
        names = {r["id"]: r["label"] for r in report["readers"]}
        c = report["counts"]
        st = report["settings"]
        lines = [
            f"Agreement of {report.get('project')}: {c['cases']} cases, {c['readers']} readers, "
            f"{c['reads']} reads, {c['findings']} findings, {c['clusters']} lesions",
            f"match rule {st['match_rule']} {st['match_threshold']}; "
            f"95% CIs from {st['bootstrap_replicates']} case bootstraps",
            "",
            "Detection",
            f"  agreement (all pairs)  {_fmt(report['detection']['agreement'])}",
            "  lesions marked by k readers: "
            + ", ".join(
                f"{r['readers']}: {r['lesions']}" for r in report["detection"]["lidc_table"]
            ),
        ]
        for r in report["detection"]["per_reader"]:
            flag = "  FLAGGED" if r.get("flagged") else ""
            lines.append(
                f"  {names.get(r['reader'], r['reader']):<10} sensitivity {_fmt(r['sensitivity'])}"
                f"  FP/case {_fmt(r['fp_per_case'])}  F1 {_fmt(r['f1'])}{flag}"
            )
        lines += ["", "Attributes"]
        for b in report["case_labels"] + report["attributes"]:
            if b["kind"] == "number":
                lines.append(
                    f"  {b['name']:<28} ICC(2,1) {_fmt(b['icc']['ICC(2,1)'])}  "
                    f"ICC(2,k) {_fmt(b['icc']['ICC(2,k)'])}  CV {_fmt(b['cv'])}"
                )
            else:
                lines.append(
                    f"  {b['name']:<28} alpha {_fmt(b['krippendorff_alpha'])}  "
                    f"Fleiss {_fmt(b['fleiss_kappa'])}  {b['gwet_form']} {_fmt(b['gwet_ac'])}"
                )
                weights = "quadratic" if b["kind"] == "ordinal" else "unweighted"
                mean = (b.get("kappa_mean") or {}).get(weights)
                if mean:
                    ac1 = f"  AC1 {_fmt(b['gwet_ac1'])}" if b.get("gwet_ac1") else ""
                    lines.append(
                        f"  {'':<28} Cohen kappa ({weights}), mean of {mean['pairs']} pairs "
                        f"{_fmt(mean)}{ac1}"
                    )
            outside = b.get("outside_scale")
            if outside:
                counts = ", ".join(f"{k} {v}" for k, v in outside["ratings"].items())
                lines.append(
                    f"  {'':<28} left out: {counts}; gradable vs not: "
                    f"Fleiss {_fmt(outside['fleiss_kappa'])}  AC1 {_fmt(outside['gwet_ac1'])}"
                )
        if report["detection"].get("by_type"):
            lines += ["", "Lesion types (positive specific agreement = pairwise F1)"]
            for t in report["detection"]["by_type"]:
                lines.append(
                    f"  {t['finding_type']:<20} {t['rule']} {t['threshold']} {t['unit']}  "
                    f"marks {t['marks']}  lesions {t['clusters']}  {_fmt(t['agreement'])}"
                )
        for o in report.get("outlines", []):
            lines.append(
                f"Outline {o['finding_type']} ({o['pairs']} pairs): Dice {_fmt(o['dice'])}  "
                f"IoU {_fmt(o['iou'])}"
            )
        s = report["shapes"]
        lines += [
            "",
            f"Shapes ({s['pairs']} pairs): Dice {_fmt(s['dice'])}  HD95 {_fmt(s['hd95_mm'])} mm  "
            f"ASSD {_fmt(s['assd_mm'])} mm  NSD@{s['tolerance_mm']}mm {_fmt(s['nsd'])}",
        ]
        if report["weekly"]:
            lines += ["", "Per week"]
            for w in report["weekly"]:
                lines.append(
                    f"  {w['week']}  cases {w['cases']:>4}"
                    f"  detection {_fmt(w['detection_agreement'])}"
                    f"  alpha {_fmt(w.get('attribute_alpha'))}"
                )
        return "\n".join(lines) + "\n"
