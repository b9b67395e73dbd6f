"""LUNA16 annotation files: annotations.csv and annotations_excluded.csv.

The columns are LUNA16's (seriesuid, coordX, coordY, coordZ, diameter_mm),
world coordinates in mm (patient LPS, as LUNA16's own files), one row per
current reference finding. Excluded findings (adjudicated but not scored, such
as nodules under 3 mm or non-nodules) go to annotations_excluded.csv, which
LUNA16's evaluation reads so marks on them count neither as hits nor as false
positives. These two files carry no byte order mark (LUNA16 tools
read them with pandas, which would keep it in the first column name); the
package's own tables have one, for Excel. A finding without a centre cannot
be scored and is left out.
"""

from __future__ import annotations

from export.model import PackageInput

HEADER = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]


def rows(inp: PackageInput, excluded: bool) -> list[list]:
    out = []
    for ref in sorted(inp.reference, key=lambda r: (r.series_uid, r.ref_finding_id)):
        if ref.excluded != excluded or ref.centre_mm is None:
            continue
        x, y, z = ref.centre_mm
        out.append([ref.series_uid, x, y, z, ref.diameter_mm if ref.diameter_mm else -1.0])
    return out


def write(out, inp: PackageInput, prefix: str = "") -> None:
    out.write_csv(f"{prefix}annotations.csv", HEADER, rows(inp, excluded=False), bom=False)
    out.write_csv(f"{prefix}annotations_excluded.csv", HEADER, rows(inp, excluded=True), bom=False)
