"""RefSet's own read format, so reads move between RefSet instances.

One JSON document per export:

    {"format": "refset-reads", "version": 1,
     "project": SLUG, "schema": {"key": K, "version": V}, "exported_at": ISO,
     "cases": [
       {"case": CODE, "series_uid": UID, "study_uid": UID,
        "reads": [
          {"reader": PSEUDONYM, "phase": 1, "submitted_at": ISO,
           "labels": {...case-level answers...},
           "findings": [
             {"uid": UUID, "finding_type": "nodule", "source": "manual",
              "attributes": {...},
              "geometry": {"kind": K, "centre_mm": [x, y, z],
                           "shapes": [{"slice_index": i, "points": [[col, row], ...],
                                       "sop_instance_uid": UID, "z_mm": z}]}}]}]}]}

A finding is the reading API's finding (finding_type, geometry, attributes,
source); each shape also names its image (SOP Instance UID and z) so another
instance, whose slice numbering may differ, places it on the same image.
Readers travel as pseudonyms only. Parsing is plain Python; `services` matches
series and images and checks the schema.
"""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext

from annotation_server.reading.importers.model import (
    FindingIn,
    ReadIn,
    SeriesReadsIn,
    ShapeIn,
    SliceRef,
)

FORMAT = "refset-reads"
VERSION = 1


class RefsetFormatError(ValueError):
    """Not a RefSet reads document, or one with a broken structure."""


def _shape(raw: Any, where: str) -> ShapeIn:
    if not isinstance(raw, dict):
        raise RefsetFormatError(gettext("%(where)s: a shape must be an object") % {"where": where})
    index = raw.get("slice_index")
    z = raw.get("z_mm")
    return ShapeIn(
        ref=SliceRef(
            sop_uid=str(raw.get("sop_instance_uid") or ""),
            z=float(z) if isinstance(z, int | float) and not isinstance(z, bool) else None,
            slice_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        ),
        points=raw.get("points") if "points" in raw else None,
        mask_ref=raw.get("mask_ref") if isinstance(raw.get("mask_ref"), str) else None,
    )


def parse(data: bytes) -> list[SeriesReadsIn]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RefsetFormatError(gettext("Malformed JSON: %(error)s") % {"error": exc}) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RefsetFormatError(
            gettext('Not a RefSet reads document ("format": "%(format)s").') % {"format": FORMAT}
        )
    if doc.get("version") != VERSION:
        raise RefsetFormatError(
            gettext("Unsupported version %(found)s (this is %(version)s).")
            % {"found": doc.get("version"), "version": VERSION}
        )
    cases = doc.get("cases")
    if not isinstance(cases, list):
        raise RefsetFormatError(gettext('"cases" must be a list.'))
    out = []
    for c_index, c in enumerate(cases):
        if not isinstance(c, dict) or not isinstance(c.get("reads"), list):
            raise RefsetFormatError(
                gettext("%(where)s must be an object with a reads list")
                % {"where": f"cases[{c_index}]"}
            )
        series = SeriesReadsIn(
            series_uid=str(c.get("series_uid") or ""),
            study_uid=str(c.get("study_uid") or ""),
            case_code=str(c.get("case") or ""),
        )
        for r_index, r in enumerate(c["reads"]):
            where = f"cases[{c_index}].reads[{r_index}]"
            if not isinstance(r, dict) or not isinstance(r.get("findings", []), list):
                raise RefsetFormatError(
                    gettext("%(where)s must be an object with a findings list") % {"where": where}
                )
            phase = r.get("phase", 1)
            if not isinstance(phase, int) or isinstance(phase, bool) or phase not in (1, 2):
                raise RefsetFormatError(
                    gettext("%(where)s.phase must be 1 or 2") % {"where": where}
                )
            labels = r.get("labels")
            if labels is not None and not isinstance(labels, dict):
                raise RefsetFormatError(
                    gettext("%(where)s.labels must be an object") % {"where": where}
                )
            read = ReadIn(
                reader_key=str(r.get("reader") or f"read {r_index + 1}"),
                phase=phase,
                labels=labels,
                submitted_at=r.get("submitted_at"),
            )
            for f_index, f in enumerate(r.get("findings", [])):
                fw = f"{where}.findings[{f_index}]"
                if not isinstance(f, dict) or not isinstance(f.get("geometry"), dict):
                    raise RefsetFormatError(
                        gettext("%(where)s must be an object with a geometry") % {"where": fw}
                    )
                geometry = f["geometry"]
                shapes = geometry.get("shapes")
                if not isinstance(shapes, list):
                    raise RefsetFormatError(
                        gettext("%(where)s.geometry.shapes must be a list") % {"where": fw}
                    )
                attributes = f.get("attributes", {})
                if not isinstance(attributes, dict):
                    raise RefsetFormatError(
                        gettext("%(where)s.attributes must be an object") % {"where": fw}
                    )
                centre = geometry.get("centre_mm")
                read.findings.append(
                    FindingIn(
                        label=f"{read.reader_key}, {f.get('uid') or fw}",
                        role="typed",
                        finding_type=str(f.get("finding_type") or ""),
                        kind=str(geometry.get("kind") or ""),
                        shapes=[_shape(s, fw) for s in shapes],
                        exclusions=[_shape(s, fw) for s in geometry.get("exclusions") or []],
                        extra_inclusions=[
                            _shape(s, fw) for s in geometry.get("extra_inclusions") or []
                        ],
                        attributes=attributes,
                        centre_mm=list(centre) if isinstance(centre, list) else None,
                        source=str(f.get("source") or "manual"),
                        origin=geometry.get("origin")
                        if isinstance(geometry.get("origin"), dict)
                        else None,
                    )
                )
            series.reads.append(read)
        out.append(series)
    return out
