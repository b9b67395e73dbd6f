"""Indexing already de-identified DICOM datasets into studies, series and instances.

`index_datasets` is the storage half of ingest: it writes each instance to
content-addressed storage and records its geometry. The import pipeline (file
parsing, de-identification, per-file reports) sits in front of it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from pydicom.dataset import Dataset

from annotation_server.imaging import storage
from annotation_server.imaging.headers import IndexFacts, index_facts
from annotation_server.imaging.ingest.prepare import encode
from annotation_server.imaging.models import Instance, Series, Study


@dataclass
class IndexReport:
    studies: int = 0
    series: list[Series] = field(default_factory=list)
    new_series: list[Series] = field(default_factory=list)
    instances: int = 0
    duplicates: int = 0


def _normal(orientation: list[float] | None) -> np.ndarray | None:
    if not orientation or len(orientation) != 6:
        return None
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else None


@dataclass
class StoredEntry:
    """A stored instance: its header (pixel data may be absent; None when only its
    index facts came back from an ingest worker, or for a file being removed), its
    index facts (from the header unless given) and storage facts."""

    header: Dataset | None
    sha256: str
    key: str
    size: int
    facts: IndexFacts | None = None

    def __post_init__(self) -> None:
        if self.facts is None and self.header is not None:
            self.facts = index_facts(self.header)


def store(ds: Dataset) -> StoredEntry:
    data = encode(ds)
    digest, key, _ = storage.put(data)
    return StoredEntry(ds, digest, key, len(data))


def index_datasets(project, datasets: list[Dataset], *, site=None) -> IndexReport:
    """Store and index de-identified datasets of one or more series."""
    return index_entries(project, [store(ds) for ds in datasets], site=site)


@transaction.atomic
def index_entries(project, entries: list[StoredEntry], *, site=None) -> IndexReport:
    """Index stored instances into studies, series and per-frame Instance rows."""
    report = IndexReport()
    by_series: dict[str, list[StoredEntry]] = defaultdict(list)
    for entry in entries:
        by_series[entry.facts.series_uid].append(entry)
    for series_uid, items in by_series.items():
        first = items[0].facts
        study, created = Study.objects.get_or_create(
            project=project,
            study_uid=first.study_uid,
            defaults={**first.study, "site": site},
        )
        report.studies += int(created)
        fields = first.series
        series, series_created = Series.objects.get_or_create(
            study=study, series_uid=series_uid, defaults=dict(fields)
        )
        if series_created:
            report.new_series.append(series)
        normal = _normal(series.orientation or fields["orientation"])
        known = set(series.instances.values_list("sop_instance_uid", "frame"))
        was_empty = not known
        instances = []
        rows = 0
        for entry in items:
            facts = entry.facts
            for frame in facts.frames:
                rows += 1
                ident = (facts.sop_instance_uid, frame["frame"])
                if ident in known:
                    continue
                known.add(ident)
                position = frame["position"]
                along = float(np.dot(normal, position)) if normal is not None and position else None
                instances.append(
                    Instance(
                        series=series,
                        sop_instance_uid=facts.sop_instance_uid,
                        frame=frame["frame"],
                        slice_index=0,
                        position=position,
                        position_along_normal=along,
                        rescale_slope=frame["slope"],
                        rescale_intercept=frame["intercept"],
                        sha256=entry.sha256,
                        file=entry.key,
                        size_bytes=entry.size,
                        **facts.instance,
                    )
                )
        report.duplicates += rows - len(instances)
        if was_empty:  # a new series: number the slices before the one INSERT
            _number(instances)
        Instance.objects.bulk_create(instances, batch_size=500)
        report.instances += len(instances)
        if instances:
            _reorder(series, instances if was_empty else None)
        report.series.append(series)
    return report


def _number(instances: list[Instance]) -> None:
    """Sort frames along the slice normal (then instance number, frame) and number them."""
    instances.sort(
        key=lambda i: (
            i.position_along_normal is None,
            i.position_along_normal or 0.0,
            i.instance_number or 0,
            i.frame,
        )
    )
    for index, inst in enumerate(instances):
        inst.slice_index = index


def _reorder(series: Series, numbered: list[Instance] | None = None) -> None:
    """Number the series' frames along the slice normal and update its geometry
    (`numbered`: the series' complete, already numbered rows, when it was new)."""
    if numbered is None:
        instances = list(series.instances.all())
        _number(instances)
        Instance.objects.bulk_update(instances, ["slice_index"], batch_size=1000)
    else:
        instances = numbered
    positions = [i.position_along_normal for i in instances if i.position_along_normal is not None]
    steps = np.diff(positions) if len(positions) > 1 else []
    series.slice_spacing_mm = float(np.median(steps)) if len(steps) else None
    series.num_instances = len(instances)
    series.save(update_fields=["slice_spacing_mm", "num_instances"])
