"""Periodic work: what runs on a schedule, in one table, each run a Job row.

`PERIODIC` names each periodic job (name -> its handler here); every run is a
Job of the one kind `periodic.run` (registry.JOB_HANDLERS; web/jobs.py) with the
name in its parameters. settings.CELERY_BEAT_SCHEDULE says when each runs.
With a broker, `celery -A annotation_server beat` sends `refset.periodic(name)`
(web/tasks.py) to a worker of the default queue, which queues the job (`enqueue`:
not when one of its kind is still queued or running); without one (the embedded
demo), `manage.py run_periodic [name ...]` runs the same jobs in its own process
(`run_now`), e.g. from cron. Either way the result is a Job row, kept and shown:

- overdue_reminders: the open reads and arbitrations whose due date passed, per
  person; each person's home page shows their reminder (`notices_for`), counting
  only what is still open when the page is shown.
- verify_audit: the audit hash chain and its anchors (audit.services.verify_chain);
  a break is logged at ERROR, mailed to REFSET_ALERT_EMAILS, and shown on the home page of
  every dataset manager and administrator until a later run finds the chain intact.
- cleanup: leftovers older than REFSET_CLEANUP_AFTER_H: uploads in storage that no
  queued or running import job will read, `.part-*` files of killed writers (in a
  local storage folder, the export scratch folder, this node's storage cache),
  S3 multipart uploads never completed, and this node's import/STOW/PACS scratch
  folders. The storage part is the same for every node; the local part cleans the
  disk of the node that runs it (`run_periodic cleanup` on each host does all).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job

logger = logging.getLogger(__name__)

JOB_KIND = "periodic.run"

# Scratch folders that one import, STOW request, PACS pull or fine-tuning makes
# under the temporary folder and removes when it ends: one older than the cutoff
# belongs to a process that was killed. (The DICOM listener's refset-dimse-*
# folder lives as long as the listener and is not listed.)
SCRATCH_PREFIXES = (
    "refset-import-",
    "refset-stow-",
    "refset-pull-",
    "refset-cget-",
    "refset-finetune-",
)
UPLOADS = "uploads"


def check_name(name: str) -> str:
    if name not in PERIODIC:
        raise ValueError(f"unknown periodic job {name!r}; known: {', '.join(sorted(PERIODIC))}")
    return name


def runs(name: str):
    return Job.objects.filter(kind=JOB_KIND, params__name=check_name(name))


def enqueue(name: str) -> Job | None:
    """Queue the periodic job `name` (what beat's task does), unless one of the
    same name is queued or running already (a slow run is not stacked); None then."""
    if runs(name).filter(state__in=(Job.State.QUEUED, Job.State.RUNNING)).exists():
        logger.info("periodic %s: one is still queued or running; not queued again", name)
        return None
    return jobs.enqueue(JOB_KIND, params={"name": name})


def run_now(name: str) -> Job:
    """Run the periodic job `name` in this process (`manage.py run_periodic`), as
    a Job row like any other; returns the finished row."""
    job = Job.objects.create(
        kind=JOB_KIND, params={"name": check_name(name)}, language=settings.LANGUAGE_CODE
    )
    jobs.execute(job.pk)
    job.refresh_from_db()
    return job


def run_job(ctx) -> dict:
    """The `periodic.run` job: the handler its parameters name."""
    return PERIODIC[check_name(ctx.params.get("name", ""))](ctx)


def latest(name: str) -> Job | None:
    """The latest finished run of `name`."""
    return runs(name).filter(state__in=Job.FINISHED).order_by("-finished_at", "-pk").first()


# -- overdue reads and arbitrations --------------------------------------------------


def remind_overdue(now=None) -> dict:
    """Every open read (not a qualification read) and unsigned arbitration whose
    due date has passed, per person: {"readers": {user id: {"reads": [task ids],
    "arbitrations": [task ids], "oldest_due": ISO time}}, and totals."""
    from annotation_server.adjudication.models import ArbitrationTask
    from annotation_server.reading.models import ReadingTask

    now = now or timezone.now()
    people: dict[str, dict] = {}

    def add(user_id: int, field: str, task_id: int, due) -> None:
        entry = people.setdefault(
            str(user_id), {"reads": [], "arbitrations": [], "oldest_due": due.isoformat()}
        )
        entry[field].append(task_id)
        entry["oldest_due"] = min(entry["oldest_due"], due.isoformat())

    reads = (
        ReadingTask.objects.operational()
        .filter(due_at__lt=now)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .values_list("reader_id", "pk", "due_at")
        .order_by("due_at", "pk")
    )
    for user_id, task_id, due in reads:
        add(user_id, "reads", task_id, due)
    arbitrations = (
        ArbitrationTask.objects.filter(due_at__lt=now)
        .exclude(state=ArbitrationTask.State.SIGNED)
        .values_list("arbitrator_id", "pk", "due_at")
        .order_by("due_at", "pk")
    )
    for user_id, task_id, due in arbitrations:
        add(user_id, "arbitrations", task_id, due)
    return {
        "at": now.isoformat(),
        "readers": people,
        "reads": sum(len(p["reads"]) for p in people.values()),
        "arbitrations": sum(len(p["arbitrations"]) for p in people.values()),
        "people": len(people),
    }


def overdue_reminders_job(ctx) -> dict:
    result = remind_overdue()
    ctx.log(
        f"{result['reads']} overdue reads and {result['arbitrations']} overdue arbitrations "
        f"for {result['people']} people"
    )
    return result


# -- the audit chain -----------------------------------------------------------------


def verify_audit(progress=None) -> dict:
    """Verify the audit chain and its anchors; on a break, log it at ERROR and
    mail REFSET_ALERT_EMAILS (the home page shows it to managers: `notices_for`)."""
    from annotation_server.audit.services import verify_chain

    report = verify_chain(progress=progress)
    result = {
        "ok": report.ok,
        "checked": report.checked,
        "first_bad_id": report.first_bad_id,
        "problem": report.problem,
        "anchors": report.anchors,
        "unanchored": report.unanchored,
        "at": timezone.now().isoformat(),
    }
    if not report.ok:
        where = f"row #{report.first_bad_id}" if report.first_bad_id is not None else "anchors"
        message = (
            f"The audit hash chain is BROKEN at {where}: {report.problem}\n"
            f"{report.checked} events verified before the problem. "
            "Run `manage.py verify_audit` for details."
        )
        logger.error("audit chain broken at %s: %s", where, report.problem)
        if settings.REFSET_ALERT_EMAILS:
            send_mail(
                "RefSet: audit chain verification failed",
                message,
                None,  # DEFAULT_FROM_EMAIL (REFSET_ALERT_FROM)
                list(settings.REFSET_ALERT_EMAILS),
                fail_silently=True,  # the log line and the home page still say it
            )
    return result


def verify_audit_job(ctx) -> dict:
    ctx.log("verifying the audit hash chain and its anchors (nightly)")
    result = verify_audit(progress=lambda done, total: ctx.progress(100 * done / max(total, 1)))
    ctx.log(
        f"checked {result['checked']} events: "
        + ("intact" if result["ok"] else f"BROKEN: {result['problem']}")
    )
    return result


# -- leftovers -----------------------------------------------------------------------


def _old(mtime: float, cutoff: float) -> bool:
    return mtime < cutoff


def _newest_mtime(path: Path) -> float:
    """A folder's newest modification time among itself and what it holds (a
    folder a live process still writes into is not old)."""
    newest = path.lstat().st_mtime
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def _remove(path: Path) -> int:
    """Remove a file or folder; the bytes it held."""
    try:
        if path.is_dir() and not path.is_symlink():
            size = sum(
                f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()
            )
            shutil.rmtree(path, ignore_errors=True)
            return size
        size = path.lstat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0


def _pending_upload_batches() -> set[str]:
    """The upload folders (uploads/<batch>) that a queued or running import will read."""
    batches = set()
    for params in Job.objects.filter(
        kind="imaging.import", state__in=(Job.State.QUEUED, Job.State.RUNNING)
    ).values_list("params", flat=True):
        for upload in (params or {}).get("uploads") or []:
            parts = str(upload.get("key", "")).split("/")
            if len(parts) >= 2 and parts[0] == UPLOADS:
                batches.add(parts[1])
    return batches


def clean_uploads(cutoff) -> dict:
    """Delete stored upload folders no queued or running import will read and
    whose newest file is older than `cutoff` (an aware datetime): a request cut
    off between storing the files and queueing the job, or an import that died
    on its last attempt before deleting them."""
    removed_batches = removed_files = 0
    try:
        batches, _files = default_storage.listdir(UPLOADS)
    except FileNotFoundError:
        return {"upload_batches": 0, "upload_files": 0}
    pending = _pending_upload_batches()
    emptied: list[str] = []
    for batch in batches:
        if batch in pending:
            continue
        prefix = f"{UPLOADS}/{batch}"
        try:
            _dirs, files = default_storage.listdir(prefix)
            names = [f"{prefix}/{f}" for f in files]
            if not names or any(default_storage.get_modified_time(n) >= cutoff for n in names):
                continue
        except FileNotFoundError:
            continue
        if batch in _pending_upload_batches():  # queued while we looked
            continue
        for name in names:
            default_storage.delete(name)
        emptied.append(prefix)
        removed_batches += 1
        removed_files += len(names)
        logger.info("cleanup: removed %d orphaned upload file(s) under %s", len(names), prefix)
    _remove_empty_local_dirs(emptied)
    return {"upload_batches": removed_batches, "upload_files": removed_files}


def _remove_empty_local_dirs(prefixes: list[str]) -> None:
    """On a local storage folder, the folders of the upload batches just deleted
    (an object store has no folders)."""
    from annotation_server.imaging import storage

    if not storage.is_local():
        return
    for prefix in prefixes:
        try:
            Path(default_storage.path(prefix)).rmdir()
        except OSError:  # not empty (written to since), or gone
            pass


def clean_storage_parts(cutoff) -> dict:
    """On a local storage folder, `.part-*` files of writers killed mid-write
    (imaging.storage publishes by hard link from them); on S3, multipart uploads
    started before `cutoff` and never completed (their parts are billed and
    invisible)."""
    from annotation_server.imaging import storage

    if storage.is_local():
        removed = size = 0
        root = Path(default_storage.path(""))
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if ".part-" not in name:
                    continue
                path = Path(dirpath) / name
                try:
                    if _old(path.lstat().st_mtime, cutoff.timestamp()):
                        size += _remove(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return {"storage_parts": removed, "storage_part_bytes": size}
    if storage.is_s3():
        return {"multipart_aborted": _abort_stale_multipart(cutoff)}
    return {}


def _abort_stale_multipart(cutoff) -> int:
    backend = storage_backend()
    client = backend.connection.meta.client
    prefix = backend._normalize_name("") if backend.location else ""
    aborted = 0
    kwargs = {"Bucket": backend.bucket_name, "Prefix": prefix}
    while True:
        page = client.list_multipart_uploads(**kwargs)
        for upload in page.get("Uploads", []) or []:
            if upload["Initiated"] < cutoff:
                client.abort_multipart_upload(
                    Bucket=backend.bucket_name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
        if not page.get("IsTruncated"):
            return aborted
        kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
        kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker", "")


def storage_backend():
    from annotation_server.imaging import storage

    return storage._wrapped()


def clean_local(cutoff) -> dict:
    """This node's disk: `.part-*` leftovers in the export scratch folder and the
    storage cache, finished packages and zips in the export scratch folder (their
    zips are kept in the storage, where downloads come from; the local copy only
    lets a killed export resume), and scratch folders of killed imports, STOW
    requests, PACS pulls and fine-tunings in the temporary folder."""
    from annotation_server.imaging import storage

    limit = cutoff.timestamp()
    removed = finished = size = 0
    export_dir = Path(settings.REFSET_EXPORT_DIR)
    # <project>/<shared|sequestered>/<package folder, zip or .part-*>
    for path in sorted(export_dir.glob("*/*/*")) if export_dir.is_dir() else ():
        try:
            if not _old(_newest_mtime(path), limit):
                continue
            size += _remove(path)
        except FileNotFoundError:
            continue
        if ".part-" in path.name:
            removed += 1
        else:
            finished += 1
    cache_bytes = 0
    if storage.is_remote() and Path(settings.REFSET_STORAGE_CACHE_DIR).is_dir():
        cache_bytes = storage._cache().trim(stale_part_s=max(0.0, time.time() - limit))
    scratch_dirs = 0
    roots = {Path(tempfile.gettempdir())}
    if getattr(settings, "FILE_UPLOAD_TEMP_DIR", None):
        roots.add(Path(settings.FILE_UPLOAD_TEMP_DIR))
    for root in roots:
        try:
            entries = list(root.iterdir())
        except OSError:
            continue
        for path in entries:
            if not path.name.startswith(SCRATCH_PREFIXES) or not path.is_dir():
                continue
            try:
                if path.stat().st_uid != os.getuid() or not _old(_newest_mtime(path), limit):
                    continue
            except FileNotFoundError:
                continue
            size += _remove(path)
            scratch_dirs += 1
    return {
        "local_parts": removed,
        "local_exports": finished,
        "scratch_dirs": scratch_dirs,
        "local_bytes": size,
        "cache_bytes": cache_bytes,
    }


def cleanup(*, older_than: timedelta | None = None, now=None) -> dict:
    """Every kind of leftover older than `older_than` (REFSET_CLEANUP_AFTER_H)."""
    now = now or timezone.now()
    older_than = older_than or timedelta(hours=settings.REFSET_CLEANUP_AFTER_H)
    cutoff = now - older_than
    result = {"cutoff": cutoff.isoformat(), "host": os.uname().nodename}
    result.update(clean_uploads(cutoff))
    result.update(clean_storage_parts(cutoff))
    result.update(clean_local(cutoff))
    return result


def cleanup_job(ctx) -> dict:
    result = cleanup()
    ctx.log(
        "removed "
        + ", ".join(f"{k}={v}" for k, v in result.items() if k not in ("cutoff", "host"))
        + f" on {result['host']} (older than {result['cutoff']})"
    )
    return result


# -- what the home page shows --------------------------------------------------------


# name -> the handler of a run (takes the JobContext). Beat's schedule
# (settings.CELERY_BEAT_SCHEDULE) must send exactly these names (tested).
PERIODIC = {
    "overdue_reminders": overdue_reminders_job,
    "verify_audit": verify_audit_job,
    "cleanup": cleanup_job,
}


def notices_for(user) -> list[dict]:
    """The periodic jobs' notices for this user's home page: their overdue reads
    and arbitrations (still open now) from the latest reminder run, and, for
    dataset managers and administrators, an audit chain the latest nightly run
    found broken."""
    from annotation_server.adjudication.models import ArbitrationTask
    from annotation_server.projects.permissions import MANAGE, project_ids
    from annotation_server.reading.models import ReadingTask

    notices: list[dict] = []
    reminder = latest("overdue_reminders")
    entry = None
    if reminder is not None and reminder.state == Job.State.SUCCEEDED:
        entry = (reminder.result or {}).get("readers", {}).get(str(user.pk))
    if entry:
        reads = (
            ReadingTask.objects.filter(pk__in=entry.get("reads") or [], reader=user)
            .exclude(state=ReadingTask.State.SUBMITTED)
            .count()
        )
        arbitrations = (
            ArbitrationTask.objects.filter(pk__in=entry.get("arbitrations") or [], arbitrator=user)
            .exclude(state=ArbitrationTask.State.SIGNED)
            .count()
        )
        if reads or arbitrations:
            notices.append(
                {
                    "kind": "overdue",
                    "reads": reads,
                    "arbitrations": arbitrations,
                    "oldest_due": parse_datetime(entry.get("oldest_due") or ""),
                    "at": reminder.finished_at,
                }
            )
    if user.is_superuser or user.is_staff or project_ids(user, MANAGE):
        audit = latest("verify_audit")
        if audit is not None:
            result = audit.result or {}
            broken = audit.state == Job.State.SUCCEEDED and result.get("ok") is False
            failed = audit.state == Job.State.FAILED
            if broken or failed:
                notices.append(
                    {
                        "kind": "audit_broken" if broken else "audit_failed",
                        "problem": result.get("problem") or (audit.error.splitlines() or [""])[0],
                        "first_bad_id": result.get("first_bad_id"),
                        "at": audit.finished_at,
                    }
                )
    return notices


def schedule_names() -> set[str]:
    """The periodic job names beat's schedule sends (settings.CELERY_BEAT_SCHEDULE)."""
    return {
        entry["args"][0]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry.get("task") == "refset.periodic"
    }
