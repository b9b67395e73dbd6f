"""What the DICOM writers share: UIDs derived from the version, fixed times.

Every UID a package creates is a 2.25 UID of a name-based UUID over the
dataset id, version and what the object is, so exporting a version twice gives
the same UIDs (and the same bytes). Content dates and times are the freeze time.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

import pydicom

from export.model import PackageInput, SeriesRecord

_NAMESPACE = uuid.UUID("6f1d8f5e-2b1c-5c55-9d6e-7265667365ff")
MANUFACTURER = "RefSet"


def derived_uid(inp: PackageInput, *parts: object) -> str:
    name = "\x1f".join(str(p) for p in (inp.dataset_id, inp.version, *parts))
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"


def dicom_date_time(inp: PackageInput) -> tuple[str, str]:
    stamp = inp.frozen_at or "1980-01-01T00:00:00"
    return stamp[:10].replace("-", ""), stamp[11:19].replace(":", "") or "000000"


def finish(ds: pydicom.Dataset, inp: PackageInput, key: str, source: pydicom.Dataset) -> None:
    """Make a built object the same every time, and keep the images' de-identification.

    Builders stamp creation dates, contribution times and some UIDs from the
    clock or a random source; these become the freeze time and UIDs derived
    from the version. The de-identification method of the source images is
    carried over, since the object holds their (pseudonymous) patient data.
    """
    date, time = dicom_date_time(inp)
    for prefix in ("Content", "Series", "InstanceCreation"):
        if f"{prefix}Date" in ds:
            setattr(ds, f"{prefix}Date", date)
        if f"{prefix}Time" in ds:
            setattr(ds, f"{prefix}Time", time)
    inherited = len(getattr(source, "ContributingEquipmentSequence", []))
    for item in list(getattr(ds, "ContributingEquipmentSequence", []))[inherited:]:
        if "ContributionDateTime" in item:
            item.ContributionDateTime = date + time
    if "DimensionOrganizationSequence" in ds:
        uid = derived_uid(inp, "dimension-organization", key)
        for item in ds.DimensionOrganizationSequence:
            item.DimensionOrganizationUID = uid
        for item in getattr(ds, "DimensionIndexSequence", []):
            item.DimensionOrganizationUID = uid
    for kw in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if kw in source:
            setattr(ds, kw, source.data_element(kw).value)
    if "DeidentificationMethodCodeSequence" in source:
        ds.DeidentificationMethodCodeSequence = source.DeidentificationMethodCodeSequence


@lru_cache(maxsize=2)
def _read_series(paths: tuple[str, ...]) -> tuple[pydicom.Dataset, ...]:
    return tuple(pydicom.dcmread(p) for p in paths)


def source_images(series: SeriesRecord) -> list[pydicom.Dataset]:
    """The series' de-identified datasets in slice order (the last two series cached)."""
    ordered = sorted(series.instances, key=lambda i: i.slice_index)
    return list(_read_series(tuple(i.path for i in ordered)))
