"""The ingest pipeline: validate -> de-identify -> store -> index -> cases.

One bad file never stops the batch: it gets a per-file reason in the report and
everything valid is imported. Nothing identifying is written: files are
de-identified in memory before they reach storage. A series is indexed in one
transaction; if that fails, the files stored for it that nothing references
are removed again, so a failure leaves no half-written instance and no orphan.

The per-file work (read, parse, de-identify, encode, hash, store) runs in a pool
of forked worker processes when REFSET_INGEST_WORKERS allows (parallel.py); only
index facts and verdicts come back, and every database write stays in this process.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from annotation_server.audit import services as audit
from annotation_server.imaging import services as imaging
from annotation_server.imaging.deid import Deidentifier, DeidOptions
from annotation_server.imaging.ingest import keys, parallel, photos
from annotation_server.imaging.ingest.sources import Candidate, Item, Limits, Rejection
from annotation_server.imaging.models import Instance, Quarantine
from annotation_server.projects.models import Case

logger = logging.getLogger(__name__)

# Files whose storage write may still be running while the next ones are prepared,
# and the threads writing them (a new file costs the file system about as much as
# parsing and de-identifying it; remote storage is latency-bound: more threads help).
MAX_IN_FLIGHT = 8
STORE_THREADS = 2
# Identity mappings written at a time (about one per file: its SOP Instance UID),
# so the key store is written while the files are still being prepared.
MAPPING_BATCH = 64


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
    workers: int = 1  # processes the files were prepared in (not part of the summary)
    event_id: int | None = None  # its "imaging.imported" audit event

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
        return {
            "summary": self.summary(),
            "files": [asdict(f) for f in self.files],
            "event_id": self.event_id,
        }


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
        workers: int | None = None,
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
                detect_pixel_text=getattr(settings, "REFSET_BURNED_IN_OCR", True),
            ),
        )
        self.report = ImportReport()
        self.mappings = keys.MappingRecorder(project, self.secret)
        self.new_series_ids: list[int] = []
        self.new_case_ids: list[int] = []
        self.prebuild_streams = prebuild_streams
        self.run_qc = run_qc
        self.workers = workers
        self.workers_used = 1  # worker processes the files were prepared in (1: this one)
        self._entries: dict[str, list[tuple[str, imaging.StoredEntry, bool]]] = defaultdict(list)
        self._current: parallel.Stored | None = None  # the file being filed
        self._abandoned: list[parallel.Stored] = []  # stored, never filed (a failed import)

    # one file ------------------------------------------------------------------

    def _take(self, stored: parallel.Stored) -> None:
        """File one handled file: its report line, key-store mappings, quarantine
        row or index entry (the database half of a file's work, always here)."""
        prepared = stored.prepared
        if prepared.rejected:
            if stored.created:  # stored, then refused (its result could not be sent)
                self._discard(imaging.StoredEntry(None, stored.sha256, stored.key, 0), True)
            self.report.files.append(FileResult(prepared.name, "rejected", prepared.reason))
            return
        facts = prepared.facts
        self.mappings.add(prepared.mappings)
        if len(self.mappings.pending) >= MAPPING_BATCH:
            self.mappings.flush()  # while the workers still run
        entry = imaging.StoredEntry(None, stored.sha256, stored.key, stored.size, facts)
        if not prepared.quarantine_reason:
            self._entries[facts.series_uid].append((prepared.name, entry, stored.created))
            return
        Quarantine.objects.get_or_create(
            project=self.project,
            sha256=stored.sha256,
            defaults={
                "reason": prepared.quarantine_reason[:200],
                "sop_instance_uid": facts.sop_instance_uid,
                "series_uid": facts.series_uid,
                "modality": facts.modality[:16],
                "file": stored.key,
                "text_boxes": prepared.text_boxes,
                "source_format": facts.instance.get("source_format", ""),
            },
        )
        self.report.files.append(
            FileResult(
                prepared.name,
                "quarantined",
                f"held for manager review: {prepared.quarantine_reason}",
                facts.series_uid,
                facts.sop_instance_uid,
                facts.sop_class_uid,
            )
        )

    def _serial(self, candidates: list[Candidate], tick: Callable[[], None]) -> None:
        """Every file in this process. Hashing and writing run on writer threads
        (both release the GIL), so they overlap the next file's parsing and
        de-identification; a bounded number of files is in flight, so memory stays
        small on large imports."""
        threads = getattr(settings, "REFSET_INGEST_STORE_THREADS", STORE_THREADS)
        in_flight: deque[Future] = deque()
        try:
            with ThreadPoolExecutor(threads, thread_name_prefix="refset-store") as writer:
                for candidate in candidates:
                    prepared = parallel.prepare_candidate(self.deid, candidate)
                    if prepared.rejected or prepared.quarantine_reason:
                        self._take_one(parallel.store(prepared))
                    else:
                        while len(in_flight) >= MAX_IN_FLIGHT:
                            self._take_one(in_flight.popleft().result())
                        in_flight.append(writer.submit(parallel.store, prepared))
                    tick()
                while in_flight:
                    self._take_one(in_flight.popleft().result())
        except BaseException:
            for future in in_flight:  # the writer threads have finished them
                if not future.cancelled() and future.exception() is None:
                    self._abandoned.append(future.result())
            raise

    def _parallel(self, candidates: list[Candidate], workers: int, tick) -> None:
        """Every file in a pool of forked workers (see parallel.py); only index facts,
        mappings, verdicts and storage facts come back."""
        pool = parallel.Pool(self.deid, candidates, workers)
        try:
            for stored in pool.results():
                self._take_one(stored)
                tick()
        except BaseException:
            self._abandoned.extend(pool.close(abandon=True))
            raise
        pool.close()

    def _take_one(self, stored: parallel.Stored) -> None:
        self._current = stored
        self._take(stored)
        self._current = None

    def _abandon(self) -> None:
        """The import failed before indexing: remove what it stored that nothing
        references (its files are in no index; a re-import stores them again)."""
        stored = [*self._abandoned, *([self._current] if self._current else [])]
        for s in stored:
            if s.created and not s.prepared.rejected:
                self._discard(imaging.StoredEntry(None, s.sha256, s.key, s.size), True)
        for entries in self._entries.values():
            for _, entry, created in entries:
                self._discard(entry, created)
        self._entries.clear()

    # one series ----------------------------------------------------------------

    def _consistent(self, series_uid: str, items) -> list:
        """Drop files that disagree with the series' majority (geometry, patient)."""
        keep = items
        for what, key_of, describe in (
            ("patient", lambda e: e.facts.patient_id, lambda k: "another"),
            ("geometry", lambda e: e.facts.geometry, _describe),
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
                    FileResult(
                        name,
                        "rejected",
                        gettext("series could not be stored: %(error)s") % {"error": exc},
                        series_uid,
                    )
                )
            return
        self.report.studies += index.studies
        self.report.series += len(index.new_series)
        for name, entry, created in items:
            duplicate = entry.facts.sop_instance_uid in known
            known.add(entry.facts.sop_instance_uid)
            if duplicate:  # other bytes under a known UID (e.g. re-sent with new dates)
                self._discard(entry, created)
            self.report.files.append(
                FileResult(
                    name,
                    "duplicate" if duplicate else "imported",
                    "already in the project" if duplicate else "",
                    series_uid,
                    entry.facts.sop_instance_uid,
                    entry.facts.sop_class_uid,
                )
            )

    def _case_for(self, series) -> Case:
        return case_for(self.project, series, self.site or series.study.site)

    # the batch -----------------------------------------------------------------

    def run(self, items: Iterable[Item]) -> ImportReport:
        # the manifest out, photographs matched, rows of unknown sites refused
        items = photos.attach(list(items), self.project)
        total = len(items)
        candidates = []
        for item in items:
            if isinstance(item, Rejection):
                self.report.files.append(FileResult(item.name, "rejected", item.reason))
            else:
                candidates.append(item)
        done = total - len(candidates)

        def tick() -> None:
            nonlocal done
            done += 1
            if self.progress and (done % 10 == 0 or done == total):
                self.progress(done, total)

        wanted = self.workers if self.workers is not None else parallel.configured_workers()
        workers, why = parallel.usable_workers(wanted, len(candidates))
        logger.info("importing %d file(s) into %s: %s", total, self.project.slug, why)
        self.workers_used = self.report.workers = workers
        try:
            if workers > 1:
                self._parallel(candidates, workers, tick)
            else:
                self._serial(candidates, tick)
        except BaseException:
            self._abandon()
            raise
        self.mappings.flush()  # the key before the images it unlocks are indexed
        for series_uid, entries in self._entries.items():
            self._index(series_uid, entries)
        photos.apply_sites(self.project, self.deid, candidates)  # the manifest's sites
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
            {e.facts.patient_id for es in self._entries.values() for _, e, _ in es}
        )
        event = audit.record(
            "imaging.imported",
            actor=self.user,
            project_id=self.project.pk,
            data={
                "source": self.source,
                "site": self.site.code if self.site else "",
                **self.report.summary(),
            },
        )
        self.report.event_id = event.pk  # the import page's report of this import
        return self.report


def case_for(project, series, site=None) -> Case:
    """The case of a new series (created, coded <PREFIX>-<n>, or the existing one)."""
    prefix = project.slug.split("-")[-1][:6].upper() or "CASE"
    n = Case.objects.filter(project=project).count() + 1
    while True:
        try:
            with transaction.atomic():
                return Case.objects.create(
                    project=project,
                    series=series,
                    site=site,
                    code=f"{prefix}-{n:05d}",
                    state=Case.State.IMPORTED,
                )
        except IntegrityError:
            existing = Case.objects.filter(project=project, series=series).first()
            if existing:
                return existing
            n += 1


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
    workers: int | None = None,
) -> ImportReport:
    """Import `items`; then (unless told not to) queue the follow-up jobs: one that
    builds the new series' pixel streams, so a reader's first open is already
    fast, and the image-QC check of the new cases. `workers`: processes that
    prepare and store the files (default: the REFSET_INGEST_WORKERS setting;
    1: this process only, as a web request must)."""
    return Ingest(
        project,
        site=site,
        user=user,
        source=source,
        progress=progress,
        prebuild_streams=prebuild_streams,
        run_qc=run_qc,
        workers=workers,
    ).run(items)


def default_limits() -> Limits:
    return Limits.from_settings()
