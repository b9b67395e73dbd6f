"""COCO JSON for 2D projects (radiographs, photographs): one image per 2-D image.

Images. A radiograph project (one image per series) has one image entry per
series, named by its DICOM path in the package. A photograph project
(export/fundus.py: OP/XC series, or the fundus schema) has one image entry per
photograph, several per series when a visit has several photographs of an eye:
`file_name` is the photograph in its original pixel format (photos/...), with
`dicom_file_name`, `case_id`, `image_id`, `sop_instance_uid` and `laterality`
(OD/OS) beside it. A 3D series has no COCO form: `applies` says so.

Categories are the schema's finding types in schema order (a fundus project's
lesion types, then optic_disc and optic_cup), with supercategory "anatomy" for
the disc and cup outlines and "finding" for everything else.

Annotations, one per shape of a finding (each shape lies on one image, its
slice_index), in image pixels (x = column, y = row), not rounded:

- polygon / contour: `segmentation` the outline, `bbox` its extent, `area` its
  (shoelace) area;
- ellipse (bounding-box corners): the 36-point polygon of the ellipse;
- box: `bbox` the box, `segmentation` the same rectangle, `area` width x height;
- point (e.g. a microaneurysm): a COCO keypoint, `keypoints` [x, y, 2] with
  `num_keypoints` 1 on a category that declares the one keypoint "centre", plus
  a box of POINT_BOX_PX pixels centred on it (`bbox`, `area`, empty
  `segmentation`), so detection tools that need a box can score a point; the
  box's size is a convention of this package, not a measured extent.
- lines and polylines have no area and are left out (the reads tables hold them).

Reference file: each current, scored reference finding (`ref_finding_id` on the
annotation); per-read files: each read's findings (`finding_id`), with the
reader's pseudonym in `info.contributor`.
"""

from __future__ import annotations

import math

from export import fundus
from export.files import dumps
from export.model import PackageInput
from export.nifdc_tables import image_path

POINT_BOX_PX = 8.0
ANATOMY = frozenset({"optic_disc", "optic_cup"})


def applies(inp: PackageInput) -> bool:
    series = [s for _, s in inp.series()]
    return bool(series) and (fundus.applies(inp) or all(len(s.instances) == 1 for s in series))


def _definition(inp: PackageInput) -> dict:
    return inp.schema.get("definition", inp.schema)


def _categories(inp: PackageInput) -> dict[str, int]:
    keys = [t["key"] for t in _definition(inp).get("finding_types", [])]
    for ref in inp.reference:
        if ref.finding_type not in keys:
            keys.append(ref.finding_type)
    for read in inp.reads:
        for f in read.findings:
            if f.finding_type not in keys:
                keys.append(f.finding_type)
    return {k: i for i, k in enumerate(keys, start=1)}


def _point_types(inp: PackageInput) -> set[str]:
    return {
        t["key"]
        for t in _definition(inp).get("finding_types", [])
        if "point" in (t.get("geometry") or [])
    }


def ring(kind: str, points: list) -> list[tuple[float, float]]:
    """A closed shape's outline as float pixel points (no repeated closing point)."""
    pts = [(float(p[0]), float(p[1])) for p in points]
    if kind == "ellipse" and len(pts) >= 2:
        (c0, r0), (c1, r1) = pts[0], pts[1]
        cc, rc, a, b = (c0 + c1) / 2, (r0 + r1) / 2, abs(c1 - c0) / 2, abs(r1 - r0) / 2
        return [
            (
                round(cc + a * math.cos(2 * math.pi * k / 36), 3),
                round(rc + b * math.sin(2 * math.pi * k / 36), 3),
            )
            for k in range(36)
        ]
    if kind == "box" and len(pts) >= 2:
        (c0, r0), (c1, r1) = pts[0], pts[1]
        c0, c1 = min(c0, c1), max(c0, c1)
        r0, r1 = min(r0, r1), max(r0, r1)
        return [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]
    if kind in ("polygon", "contour"):
        return pts
    return []


def _area(pts: list[tuple[float, float]]) -> float:
    area = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        area += x0 * y1 - x1 * y0
    return abs(area) / 2.0


def _num(v: float) -> float | int:
    """Whole numbers as ints (as the radiograph COCO always wrote them)."""
    return int(v) if float(v).is_integer() else round(float(v), 3)


def _annotation(ann_id: int, image_id: int, category: int, kind: str, shape: dict) -> dict | None:
    points = shape.get("points") or []
    if kind == "point" and points:
        x, y = float(points[0][0]), float(points[0][1])
        half = POINT_BOX_PX / 2
        return {
            "id": ann_id,
            "image_id": image_id,
            "category_id": category,
            "keypoints": [_num(x), _num(y), 2],
            "num_keypoints": 1,
            "bbox": [_num(x - half), _num(y - half), _num(POINT_BOX_PX), _num(POINT_BOX_PX)],
            "segmentation": [],
            "area": POINT_BOX_PX * POINT_BOX_PX,
            "iscrowd": 0,
        }
    pts = ring(kind, points)
    if len(pts) < 3:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category,
        "bbox": [_num(min(xs)), _num(min(ys)), _num(max(xs) - min(xs)), _num(max(ys) - min(ys))],
        "segmentation": [[_num(v) for p in pts for v in p]],
        "area": _area(pts),
        "iscrowd": 0,
    }


def _images(inp: PackageInput) -> tuple[list[dict], dict[tuple[str, int], int]]:
    """COCO image entries, and (series_uid, slice_index) -> image id."""
    images: list[dict] = []
    ids: dict[tuple[str, int], int] = {}
    if fundus.applies(inp):
        for p in fundus.photos(inp):
            image_id = len(images) + 1
            ids[(p.series.series_uid, p.inst.slice_index)] = image_id
            images.append(
                {
                    "id": image_id,
                    "file_name": p.path if inp.include_images else p.dicom_path,
                    "dicom_file_name": p.dicom_path,
                    "width": p.head.columns,
                    "height": p.head.rows,
                    "case_id": p.case.case_id,
                    "image_id": p.image_id,
                    "sop_instance_uid": p.inst.sop_instance_uid,
                    "laterality": p.head.laterality,
                }
            )
        return images, ids
    for case, s in sorted(inp.series(), key=lambda cs: (cs[0].case_id, cs[1].series_uid)):
        inst = s.instances[0]
        image_id = len(images) + 1
        ids[(s.series_uid, -1)] = image_id
        images.append(
            {
                "id": image_id,
                "file_name": image_path(case.case_id, s.series_uid, inst.sop_instance_uid),
                "width": s.columns,
                "height": s.rows,
            }
        )
    return images, ids


def document(inp: PackageInput, findings) -> dict:
    """`findings`: (series_uid, finding_type, geometry, id key, id) per finding."""
    cats = _categories(inp)
    points = _point_types(inp)
    images, image_ids = _images(inp)
    annotations = []
    for series_uid, ftype, geometry, key, ident in findings:
        if not geometry:
            continue
        kind = geometry.get("kind", "")
        for shape in geometry.get("shapes") or []:
            image_id = image_ids.get((series_uid, shape.get("slice_index", 0))) or image_ids.get(
                (series_uid, -1)
            )
            if image_id is None:
                continue
            ann = _annotation(len(annotations) + 1, image_id, cats[ftype], kind, shape)
            if ann is not None:
                ann[key] = ident
                annotations.append(ann)
    categories = []
    for k, i in cats.items():
        cat = {"id": i, "name": k, "supercategory": "anatomy" if k in ANATOMY else "finding"}
        if k in points:
            cat.update(keypoints=["centre"], skeleton=[])
        categories.append(cat)
    return {
        "info": {"description": f"{inp.dataset_id} v{inp.version}", "version": inp.version},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write(out, inp: PackageInput, prefix: str = "") -> None:
    refs = [
        (r.series_uid, r.finding_type, r.geometry, "ref_finding_id", r.ref_finding_id)
        for r in sorted(inp.reference, key=lambda r: r.ref_finding_id)
        if not r.excluded
    ]
    out.write_text(f"{prefix}reference.json", dumps(document(inp, refs)))
    for read in sorted(inp.reads, key=lambda r: r.read_id):
        findings = [
            (read.series_uid, f.finding_type, f.geometry, "finding_id", f.finding_id)
            for f in read.findings
        ]
        doc = document(inp, findings)
        doc["info"]["contributor"] = read.reader_pseudo_id
        out.write_text(f"{prefix}reads/{read.read_id}.json", dumps(doc))
