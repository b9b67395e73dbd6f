"""What an AI product is scored against: a frozen version's scans and reference.

Plain data (no Django). `truth_from_package` turns the export's `PackageInput`
(the one the package is written from, so the kit and the package can never
disagree) into a `Truth`: the scans of the chosen split, each with its voxel
grid and strata, and the reference lesions on them, excluded ones kept and
flagged (LUNA16: marks on them are neither hits nor false positives).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from export.model import PackageInput, SeriesRecord
from qc.matching import Grid

Vec3 = tuple[float, float, float]

# Size bands of the reference (mm, long-axis diameter): the NIFDC lung set's
# and Lung-RADS' usual cuts.
SIZE_BANDS = ((4.0, "<4 mm"), (6.0, "4-6 mm"), (8.0, "6-8 mm"), (15.0, "8-15 mm"))
THICKNESS_BANDS = ((1.0, "<=1 mm"), (2.5, "1-2.5 mm"), (5.0, "2.5-5 mm"))

# The strata every figure is also given per (keys of Scan.strata / Lesion.strata).
SCAN_STRATA = ("site", "manufacturer", "slice_thickness")
LESION_STRATA = ("finding_type", "size", "agreement")


def size_band(diameter_mm: float | None) -> str:
    if diameter_mm is None:
        return "unknown"
    for upper, name in SIZE_BANDS:
        if diameter_mm < upper:
            return name
    return ">=15 mm"


def thickness_band(thickness_mm: float | None) -> str:
    if thickness_mm is None:
        return "unknown"
    for upper, name in THICKNESS_BANDS:
        if thickness_mm <= upper:
            return name
    return ">5 mm"


@dataclass(frozen=True)
class Scan:
    """One series of the version: what a LUNA16 `seriesuid` names."""

    series_uid: str
    case_id: str
    patient_id: str
    grid: Grid  # qc.matching.Grid: slice positions, cosines, spacing, rows, columns
    case_label: str = ""  # positive | negative | "" (the adjudicated case label)
    strata: dict[str, str] = field(default_factory=dict)  # keys: SCAN_STRATA

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns)."""
        return (len(self.grid.positions), int(self.grid.rows or 0), int(self.grid.columns or 0))

    def contains_mm(self, x: float, y: float, z: float, margin: float = 0.5) -> bool:
        """Whether a patient-space point lies inside the volume (voxel units of
        `margin` beyond the outermost voxel centres still count as inside)."""
        s, col, row = self.grid.to_index(x, y, z)
        n, rows, cols = self.shape
        return (
            -margin <= s <= n - 1 + margin
            and -margin <= col <= cols - 1 + margin
            and -margin <= row <= rows - 1 + margin
        )


@dataclass(frozen=True)
class Lesion:
    """One reference finding (the adjudicated reference standard)."""

    lesion_id: str
    series_uid: str
    case_id: str
    finding_type: str
    centre_mm: Vec3 | None
    diameter_mm: float | None
    geometry: dict[str, Any] | None = None  # the workstation's model (export.model)
    excluded: bool = False
    exclusion_reason: str = ""
    readers: int = 0  # how many readers' marks support it
    strata: dict[str, str] = field(default_factory=dict)  # keys: LESION_STRATA

    @property
    def radius_mm(self) -> float | None:
        return None if self.diameter_mm is None else self.diameter_mm / 2.0


@dataclass(frozen=True)
class Truth:
    """The scored side of one evaluation. Never handed to the product's side."""

    dataset_id: str
    version: str
    split: str  # "" for the whole version
    rule: str  # the version's declared match rule (qc.matching.RULES)
    threshold: float  # and its threshold
    readers_per_case: int
    scans: tuple[Scan, ...]
    lesions: tuple[Lesion, ...]
    manifest_sha256: str = ""  # of the version's package MANIFEST, when exported

    def scan(self, series_uid: str) -> Scan | None:
        return self._scans.get(series_uid)

    @property
    def _scans(self) -> dict[str, Scan]:
        cache = self.__dict__.get("_scan_index")
        if cache is None:
            cache = {s.series_uid: s for s in self.scans}
            object.__setattr__(self, "_scan_index", cache)
        return cache


def grid_of(series: SeriesRecord) -> Grid:
    instances = sorted(series.instances, key=lambda i: i.slice_index)
    orientation = tuple(series.orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    positions = tuple(
        tuple(float(v) for v in (i.position or (0.0, 0.0, float(i.slice_index)))) for i in instances
    )
    return Grid(
        positions=positions,  # type: ignore[arg-type]
        row_cosine=tuple(float(v) for v in orientation[:3]),  # type: ignore[arg-type]
        column_cosine=tuple(float(v) for v in orientation[3:6]),  # type: ignore[arg-type]
        pixel_spacing=tuple(series.pixel_spacing_mm or (1.0, 1.0)),  # type: ignore[arg-type]
        rows=series.rows,
        columns=series.columns,
        slice_thickness=series.slice_thickness_mm,
    )


def truth_from_package(inp: PackageInput, split: str = "", *, manifest_sha256: str = "") -> Truth:
    """The scans and reference of one split ("" = every split) of a frozen
    version; retired cases are left out."""
    protocol = inp.protocol or {}
    readers_per_case = int(protocol.get("readers_per_case") or 0)
    scans: list[Scan] = []
    for case in inp.cases:
        if case.retired or (split and case.split != split):
            continue
        for series in case.series:
            scans.append(
                Scan(
                    series_uid=series.series_uid,
                    case_id=case.case_id,
                    patient_id=case.patient_pseudo_id,
                    grid=grid_of(series),
                    case_label=case.case_label,
                    strata={
                        "site": case.site_id or "unknown",
                        "manufacturer": series.manufacturer or "unknown",
                        "slice_thickness": thickness_band(series.slice_thickness_mm),
                    },
                )
            )
    known = {s.series_uid for s in scans}
    lesions = []
    for ref in inp.reference:
        if ref.series_uid not in known:
            continue
        n = len(ref.reader_ids)
        lesions.append(
            Lesion(
                lesion_id=ref.ref_finding_id,
                series_uid=ref.series_uid,
                case_id=ref.case_id,
                finding_type=ref.finding_type,
                centre_mm=ref.centre_mm,
                diameter_mm=ref.diameter_mm,
                geometry=ref.geometry,
                excluded=ref.excluded,
                exclusion_reason=ref.exclusion_reason,
                readers=n,
                strata={
                    "finding_type": ref.finding_type,
                    "size": size_band(ref.diameter_mm),
                    "agreement": (
                        "all readers" if readers_per_case and n >= readers_per_case else "fewer"
                    ),
                },
            )
        )
    return Truth(
        dataset_id=inp.dataset_id,
        version=inp.version,
        split=split,
        rule=str(protocol.get("match_rule") or "centre_distance"),
        threshold=float(protocol.get("match_threshold") or 0.0),
        readers_per_case=readers_per_case,
        scans=tuple(scans),
        lesions=tuple(lesions),
        manifest_sha256=manifest_sha256,
    )
