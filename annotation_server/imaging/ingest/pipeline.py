"""The ingest pipeline: validate -> de-identify -> store -> index -> cases.

One bad file never stops the batch: it gets a per-file reason in the report and
everything valid is imported. Nothing identifying is written: files are
de-identified in memory before they reach storage. A series is indexed in one
transaction; if that fails, the files stored for it that nothing references
are removed again, so a failure leaves no half-written instance and no orphan.
"""

from __future__ import annotations

import logging
import zipfile
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from pydicom import Dataset

from annotation_server.audit import services as audit
from annotation_server.imaging import services as imaging
from annotation_server.imaging.deid import Deidentifier, DeidOptions
from annotation_server.imaging.deid.engine import peek
from annotation_server.imaging.ingest import keys
from annotation_server.imaging.ingest.prepare import (
    Prepared,
    prepare,
)
from annotation_server.imaging.ingest.sources import Candidate, Item, Limits, Rejection
from annotation_server.imaging.models import Instance, Quarantine
from annotation_server.projects.models import Case

logger = logging.getLogger(__name__)

# Files whose storage write may still be running while the next ones are prepared,
# and the threads writing them (a new file costs the file system about as much as
# parsing and de-identifying it; remote storage is latency-bound: more threads help).
MAX_IN_FLIGHT = 8
STORE_THREADS = 2


@dataclass
class FileResult:
    name: str
    status: str  # imported | duplicate | quarantined | rejected
    reason: str = ""
    series_uid: str = ""
    sop_uid: str = ""  # the de-identified SOP Instance UID, once known
    sop_class_uid: str = ""


@dataclass
class ImportReport:
    files: list[FileResult] = field(default_factory=list)
    studies: int = 0
    series: int = 0
    cases: list[str] = field(default_factory=list)
    patients: int = 0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> bool:
        return self.count("rejected") == 0

    def summary(self) -> dict:
        return {
            "files": len(self.files),
            "imported": self.count("imported"),
            "duplicates": self.count("duplicate"),
            "quarantined": self.count("quarantined"),
            "rejected": self.count("rejected"),
            "studies": self.studies,
            "series": self.series,
            "patients": self.patients,
            "cases": self.cases,
        }

    def as_dict(self) -> dict:
        return {"summary": self.summary(), "files": [asdict(f) for f in self.files]}


def _geometry_key(ds: Dataset) -> tuple:
    spacing = peek(ds, "PixelSpacing") or peek(ds, "ImagerPixelSpacing") or ()
    orientation = peek(ds, "ImageOrientationPatient") or ()
    return (
        int(peek(ds, "Rows")),
        int(peek(ds, "Columns")),
        tuple(round(float(v), 3) for v in spacing),
        tuple(round(float(v), 2) for v in orientation),
    )


def _describe(key: tuple) -> str:
    rows, cols, spacing, orientation = key
    return f"{rows}x{cols}, spacing {list(spacing) or 'none'}, orientation {list(orientation)}"


class Ingest:
    def __init__(
        self,
        project,
        *,
        site=None,
        user=None,
        source: str = "upload",
        progress: Callable[[int, int], None] | None = None,
        prebuild_streams: bool = True,
        run_qc: bool = True,
    ):
        self.project = project
        self.site = site
        self.user = user
        self.source = source
        self.progress = progress
        self.secret = keys.project_secret(project)
        self.deid = Deidentifier(
            self.secret,
            DeidOptions(
                clean_descriptors=project.deid_clean_descriptors,
                retain_longitudinal_modified_dates=project.deid_shift_dates,
            ),
        )
        self.report = ImportReport()
        self.mappings = keys.MappingRecorder(project, self.secret)
        self.new_series_ids: list[int] = []
        self.new_case_ids: list[int] = []
        self.prebuild_streams = prebuild_streams
        self.run_qc = run_qc
        self._entries: dict[str, list[tuple[str, imaging.StoredEntry, bool]]] = defaultdict(list)
        self._in_flight: deque[tuple[str, Dataset, int, Future]] = deque()

    # one file ------------------------------------------------------------------

    def _one(self, prepared: Prepared, writer: ThreadPoolExecutor) -> None:
        """Store one prepared file (or report why it was rejected).

        Hashing and writing run on `writer` threads (both release the GIL), so
        they overlap the next file's parsing and de-identification; a bounded
        number of files is in flight, so memory stays small on large imports.
        """
        if prepared.rejected:
            self.report.files.append(FileResult(prepared.name, "rejected", prepared.reason))
            return
        clean = prepared.header
        self.mappings.add(prepared.mappings)
        if not prepared.quarantine_reason:
            while len(self._in_flight) >= MAX_IN_FLIGHT:
                self._settle(self._in_flight.popleft())
            stored = (
                prepared.name,
                clean,
                len(prepared.data),
                writer.submit(imaging.storage.put, prepared.data),
            )
            self._in_flight.append(stored)
            return
        digest, key, created = imaging.storage.put(prepared.data)
        series_uid = str(clean.SeriesInstanceUID)
        Quarantine.objects.get_or_create(
            project=self.project,
            sha256=digest,
            defaults={
                "reason": prepared.quarantine_reason[:200],
                "sop_instance_uid": str(clean.SOPInstanceUID),
                "series_uid": series_uid,
                "modality": str(clean.get("Modality", ""))[:16],
                "file": key,
            },
        )
        self.report.files.append(
            FileResult(
                prepared.name,
                "quarantined",
                f"held for manager review: {prepared.quarantine_reason}",
                series_uid,
                str(clean.SOPInstanceUID),
                str(clean.SOPClassUID),
            )
        )

    def _settle(self, stored: tuple[str, Dataset, int, Future]) -> None:
        """Wait for one file's write and file its entry under its series."""
        name, clean, size, future = stored
        digest, key, created = future.result()
        entry = imaging.StoredEntry(clean, digest, key, size)
        self._entries[str(clean.SeriesInstanceUID)].append((name, entry, created))

    def _read(self, candidate: Candidate) -> tuple[str, bytes | None, str]:
        try:
            return candidate.name, candidate.read(), ""
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            return candidate.name, None, f"could not read the file ({exc})"

    def _prepared(self, candidates: list[Candidate]) -> Iterator[Prepared]:
        """Parse, check, de-identify and encode each file, in this process.
        (A process pool was measured and lost on these 2-core machines: shipping
        each file to a worker and back cost more than the parallel work gained;
        bench/ingest.py, see the closing note.)"""
        for candidate in candidates:
            name, data, problem = self._read(candidate)
            if problem:
                yield Prepared(name, reason=problem)
            else:
                yield self._safe(prepare, self.deid, name, data)

    def _safe(self, fn, *args) -> Prepared:
        try:
            return fn(*args)
        except Exception as exc:  # a reader's bug must not cost the batch
            logger.exception("preparing %s failed", args[1])
            return Prepared(args[1], reason=f"could not process: {exc}")

    # one series ----------------------------------------------------------------

    def _consistent(self, series_uid: str, items) -> list:
        """Drop files that disagree with the series' majority (geometry, patient)."""
        keep = items
        for what, key_of, describe in (
            ("patient", lambda e: str(e.header.get("PatientID", "")), lambda k: "another"),
            ("geometry", lambda e: _geometry_key(e.header), _describe),
        ):
            counts = Counter(key_of(entry) for _, entry, _ in keep)
            if len(counts) <= 1:
                continue
            majority = counts.most_common(1)[0][0]
            kept = []
            for name, entry, created in keep:
                if key_of(entry) == majority:
                    kept.append((name, entry, created))
                    continue
                if what == "patient":
                    reason = (
                        f"series {series_uid} mixes patients: this file belongs to "
                        "another patient than the rest of the series"
                    )
                else:
                    reason = (
                        f"geometry disagrees with the rest of series {series_uid}: "
                        f"{describe(key_of(entry))} vs {describe(majority)}"
                    )
                self.report.files.append(FileResult(name, "rejected", reason, series_uid))
                self._discard(entry, created)
            keep = kept
        return keep

    def _discard(self, entry: imaging.StoredEntry, created: bool) -> None:
        referenced = (
            Instance.objects.filter(sha256=entry.sha256).exists()
            or Quarantine.objects.filter(sha256=entry.sha256).exists()
        )
        if created and not referenced:
            default_storage.delete(entry.key)

    def _index(self, series_uid: str, items) -> None:
        items = self._consistent(series_uid, items)
        if not items:
            return
        known = set(
            Instance.objects.filter(
                series__study__project=self.project, series__series_uid=series_uid
            ).values_list("sop_instance_uid", flat=True)
        )
        try:
            with transaction.atomic():
                index = imaging.index_entries(
                    self.project, [e for _, e, _ in items], site=self.site
                )
                for series in index.new_series:
                    case = self._case_for(series)
                    self.report.cases.append(case.code)
                    self.new_series_ids.append(series.pk)
                    self.new_case_ids.append(case.pk)
        except Exception as exc:
            logger.exception("indexing series %s failed", series_uid)
            for name, entry, created in items:
                self._discard(entry, created)
                self.report.files.append(
                    FileResult(name, "rejected", f"series could not be stored: {exc}", series_uid)
                )
            return
        self.report.studies += index.studies
        self.report.series += len(index.new_series)
        for name, entry, _ in items:
            duplicate = str(entry.header.SOPInstanceUID) in known
            known.add(str(entry.header.SOPInstanceUID))
            self.report.files.append(
                FileResult(
                    name,
                    "duplicate" if duplicate else "imported",
                    "already in the project" if duplicate else "",
                    series_uid,
                    str(entry.header.SOPInstanceUID),
                    str(entry.header.SOPClassUID),
                )
            )

    def _case_for(self, series) -> Case:
        prefix = self.project.slug.split("-")[-1][:6].upper() or "CASE"
        n = Case.objects.filter(project=self.project).count() + 1
        while True:
            try:
                with transaction.atomic():
                    return Case.objects.create(
                        project=self.project,
                        series=series,
                        site=self.site or series.study.site,
                        code=f"{prefix}-{n:05d}",
                        state=Case.State.IMPORTED,
                    )
            except IntegrityError:
                existing = Case.objects.filter(project=self.project, series=series).first()
                if existing:
                    return existing
                n += 1

    # the batch -----------------------------------------------------------------

    def run(self, items: Iterable[Item]) -> ImportReport:
        items = list(items)
        total = len(items)
        candidates = []
        for item in items:
            if isinstance(item, Rejection):
                self.report.files.append(FileResult(item.name, "rejected", item.reason))
            else:
                candidates.append(item)
        done = total - len(candidates)
        threads = getattr(settings, "REFSET_INGEST_STORE_THREADS", STORE_THREADS)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="refset-store") as writer:
            for prepared in self._prepared(candidates):
                self._one(prepared, writer)
                done += 1
                if self.progress and (done % 10 == 0 or done == total):
                    self.progress(done, total)
            while self._in_flight:
                self._settle(self._in_flight.popleft())
        self.mappings.flush()  # the key before the images it unlocks are indexed
        for series_uid, entries in self._entries.items():
            self._index(series_uid, entries)
        if self.new_series_ids and self.prebuild_streams:
            from annotation_server.jobs import services as jobs

            jobs.enqueue(
                "imaging.build_series_streams",
                project=self.project,
                user=self.user,
                params={"series_ids": self.new_series_ids},
            )
        if self.new_case_ids and self.run_qc:
            from annotation_server.jobs import services as jobs

            jobs.enqueue(
                "qc.check_cases",
                project=self.project,
                user=self.user,
                params={"case_ids": self.new_case_ids},
            )
        self.report.patients = len(
            {str(e.header.get("PatientID", "")) for es in self._entries.values() for _, e, _ in es}
        )
        audit.record(
            "imaging.imported",
            actor=self.user,
            project_id=self.project.pk,
            data={"source": self.source, **self.report.summary()},
        )
        return self.report


def ingest(
    project,
    items: Iterable[Item],
    *,
    site=None,
    user=None,
    source: str = "upload",
    progress: Callable[[int, int], None] | None = None,
    prebuild_streams: bool = True,
    run_qc: bool = True,
) -> ImportReport:
    """Import `items`; then (unless told not to) queue the follow-up jobs: one that
    builds the new series' pixel streams, so a reader's first open is already
    fast, and the image-QC check of the new cases."""
    return Ingest(
        project,
        site=site,
        user=user,
        source=source,
        progress=progress,
        prebuild_streams=prebuild_streams,
        run_qc=run_qc,
    ).run(items)


def default_limits() -> Limits:
    return Limits.from_settings()
