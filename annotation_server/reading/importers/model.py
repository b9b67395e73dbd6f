"""The importers' common plain data: reads of one series, before they are matched
to the project's instances and schema. Both formats (LIDC XML, RefSet JSON)
parse into these; `services` resolves and writes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SliceRef:
    """Where a shape lies: by SOP Instance UID, else z position (mm), else index."""

    sop_uid: str = ""
    z: float | None = None
    slice_index: int | None = None

    def describe(self) -> str:
        parts = []
        if self.sop_uid:
            parts.append(f"SOP {self.sop_uid}")
        if self.z is not None:
            parts.append(f"z {self.z:g} mm")
        if not parts and self.slice_index is not None:
            parts.append(f"slice {self.slice_index}")
        return ", ".join(parts) or "?"


@dataclass
class ShapeIn:
    ref: SliceRef
    points: list[list[float]] | None
    mask_ref: str | None = None


@dataclass
class FindingIn:
    label: str  # names the finding in the report ("reader 123, Nodule 001")
    role: str  # "nodule" | "non_nodule" (LIDC) | "typed" (finding_type given)
    kind: str
    shapes: list[ShapeIn]
    finding_type: str = ""
    exclusions: list[ShapeIn] = field(default_factory=list)
    extra_inclusions: list[ShapeIn] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    raw_characteristics: dict[str, str] = field(default_factory=dict)
    centre_mm: list[float] | None = None
    source: str = "manual"
    origin: dict[str, Any] | None = None


@dataclass
class ReadIn:
    reader_key: str  # unique within the file: the account made for it is per file
    phase: int | None = None  # None: the protocol's last phase
    findings: list[FindingIn] = field(default_factory=list)
    labels: dict[str, Any] | None = None
    submitted_at: str | None = None


@dataclass
class SeriesReadsIn:
    series_uid: str
    study_uid: str = ""
    case_code: str = ""
    reads: list[ReadIn] = field(default_factory=list)
