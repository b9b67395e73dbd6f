"""COCO JSON for 2D projects (radiographs, photographs): one image per instance.

Categories are the schema's finding types; each current, scored reference
finding with an area becomes an annotation (bbox [x, y, width, height] in
pixels, polygon segmentation, area in pixels), and each read's findings go to
a per-read file with the reader's pseudonym in `info`. Image file names are the
package's image paths. A 3D series has no COCO form: `applies` says so.
"""

from __future__ import annotations

from export.files import dumps
from export.lidc_xml import outline
from export.model import PackageInput
from export.nifdc_tables import image_path


def applies(inp: PackageInput) -> bool:
    series = [s for _, s in inp.series()]
    return bool(series) and all(len(s.instances) == 1 for s in series)


def _categories(inp: PackageInput) -> dict[str, int]:
    definition = inp.schema.get("definition", inp.schema)
    keys = [t["key"] for t in definition.get("finding_types", [])]
    for ref in inp.reference:
        if ref.finding_type not in keys:
            keys.append(ref.finding_type)
    return {k: i for i, k in enumerate(keys, start=1)}


def _annotation(ann_id: int, image_id: int, category: int, geometry: dict) -> dict | None:
    shapes = geometry.get("shapes") or []
    if not shapes:
        return None
    kind = geometry.get("kind", "")
    ring = outline(kind, shapes[0].get("points") or [])
    if len(ring) < 3:
        return None
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    area = 0.0
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        area += x0 * y1 - x1 * y0
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category,
        "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
        "segmentation": [[float(v) for p in ring for v in p]],
        "area": abs(area) / 2.0,
        "iscrowd": 0,
    }


def document(inp: PackageInput, findings) -> dict:
    cats = _categories(inp)
    images, image_ids = [], {}
    for case, s in sorted(inp.series(), key=lambda cs: (cs[0].case_id, cs[1].series_uid)):
        inst = s.instances[0]
        image_ids[s.series_uid] = len(images) + 1
        images.append(
            {
                "id": len(images) + 1,
                "file_name": image_path(case.case_id, s.series_uid, inst.sop_instance_uid),
                "width": s.columns,
                "height": s.rows,
            }
        )
    annotations = []
    for series_uid, ftype, geometry in findings:
        if series_uid not in image_ids or not geometry:
            continue
        ann = _annotation(len(annotations) + 1, image_ids[series_uid], cats[ftype], geometry)
        if ann is not None:
            annotations.append(ann)
    return {
        "info": {"description": f"{inp.dataset_id} v{inp.version}", "version": inp.version},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": k, "supercategory": "finding"} for k, i in cats.items()],
    }


def write(out, inp: PackageInput, prefix: str = "") -> None:
    refs = [
        (r.series_uid, r.finding_type, r.geometry)
        for r in sorted(inp.reference, key=lambda r: r.ref_finding_id)
        if not r.excluded
    ]
    out.write_text(f"{prefix}reference.json", dumps(document(inp, refs)))
    for read in sorted(inp.reads, key=lambda r: r.read_id):
        findings = [(read.series_uid, f.finding_type, f.geometry) for f in read.findings]
        doc = document(inp, findings)
        doc["info"]["contributor"] = read.reader_pseudo_id
        out.write_text(f"{prefix}reads/{read.read_id}.json", dumps(doc))
