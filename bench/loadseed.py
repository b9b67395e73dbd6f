"""Data for the load bench, and the checks afterwards (Django must be set up).

`seed()` builds what the simulated readers work on, through the product's own
services: a lung-CT project (the shipped lung-nodule schema; K readers per case,
no review phase, one arbitrator), N readers each with their own password, and
synthetic CT series (fixtures.build_ct_datasets, small matrices so seeding is
quick) brought in through the ingest pipeline, QC-checked, and given K readers
each by the assignment service.

Passwords are stored as PBKDF2 hashes with few iterations, so seeding 50 readers
takes no minute: at sign-in Django finds the count below its default and hashes
the password again at full cost (and saves it), so a sign-in under load costs
what a real one does, plus one UPDATE.

`verify()` checks the recorded writes (bench/loadsim.py) against the database:
no acknowledged write lost, no version conflict resolved silently, every
acknowledged submit in place, no 5xx and no unanswered request, and every job
the submits queued (settling the cases) finished and succeeded.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import transaction
from django.utils import timezone

import fixtures
from annotation_server.accounts.models import Role, Site, UserProfile
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Candidate
from annotation_server.jobs.models import Job
from annotation_server.projects.label_schemas import shipped
from annotation_server.projects.models import Case, LabelSchema, Project
from annotation_server.projects.services import create_project, grant_role
from annotation_server.quality.services import check_case, override_qc
from annotation_server.reading.assignment import assign_project
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from bench.loadsim import Recorder, Write, same

PROJECT = "load-ct"


@dataclass
class Seeded:
    accounts: list[tuple[str, str]]
    cases: int
    tasks: int
    seconds: float


class _QuickPBKDF2(PBKDF2PasswordHasher):
    iterations = 1000


def _schema(key: str) -> LabelSchema:
    item = next(i for i in shipped() if i["key"] == key)
    found, _ = LabelSchema.objects.get_or_create(
        key=key,
        version=item["version"],
        defaults={"name": item["name"], "definition": item["definition"]},
    )
    return found


def _person(username: str, password: str, pseudonym: str, site, role: str):
    hasher = _QuickPBKDF2()
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.password = hasher.encode(password, hasher.salt())
    user.save()
    UserProfile.objects.get_or_create(
        user=user,
        defaults={
            "pseudonym": pseudonym,
            "roles": [role],
            "site": site,
            "title": "attending",
            "years_experience": 8,
            "training_date": timezone.now().date(),
        },
    )
    return user


def seed(
    *, readers: int, cases: int, readers_per_case: int = 3, slices: int = 16, matrix: int = 64
) -> Seeded:
    """Readers, cases with real (synthetic) CT series, and the assignment."""
    started = time.monotonic()
    site, _ = Site.objects.get_or_create(code="LOAD", defaults={"name": "Load test hospital"})
    manager = _person("load-manager", secrets.token_urlsafe(12), "LM001", site, Role.MANAGER)
    arbitrator = _person(
        "load-arbitrator", secrets.token_urlsafe(12), "LA001", site, Role.ARBITRATOR
    )
    with transaction.atomic():
        project = create_project(
            slug=PROJECT,
            name="Load test: lung CT",
            label_schema=_schema("lung-nodule-ct"),
            task_type=Project.TaskType.DETECTION_3D,
            modality="CT",
            body_part="CHEST",
            user=manager,
            protocol={
                "readers_per_case": readers_per_case,
                "review_phase": False,
                "auto_accept_min_readers": readers_per_case,
            },
            qc_profile={"base": "CT", "min_slices": min(slices, 16)},
        )
        project.status = Project.Status.ACTIVE
        project.save(update_fields=["status"])
        grant_role(project, manager, Role.MANAGER)
        grant_role(project, arbitrator, Role.ARBITRATOR)
    accounts = []
    for i in range(readers):
        username, password = f"load-reader-{i + 1:03d}", f"pw-{secrets.token_urlsafe(12)}"
        user = _person(username, password, f"LR{i + 1:03d}", site, Role.READER)
        membership = grant_role(project, user, Role.READER)
        membership.qualified = True
        membership.save()
        accounts.append((username, password))
    for i in range(cases):
        datasets, _ = fixtures.build_ct_datasets(slices=slices, seed=5000 + i, matrix=matrix)
        items = []
        for j, ds in enumerate(datasets):
            data = fixtures.dataset_bytes(ds)
            items.append(Candidate(f"load-{i:04d}/{j:04d}.dcm", len(data), lambda d=data: d))
        report = ingest(
            project,
            items,
            site=site,
            user=manager,
            source="load",
            prebuild_streams=False,
            run_qc=False,
            workers=1,
        )
        if not report.cases:
            raise RuntimeError(f"load seeding: case {i} was not imported: {report.summary()}")
        case = Case.objects.get(project=project, code=report.cases[0])
        if check_case(case).status == "fail":
            override_qc(case, by=manager, reason="load test: synthetic series")
    assignment = assign_project(project, by=manager)
    tasks = ReadingTask.objects.operational().filter(case__project=project).count()
    if assignment.unfilled or tasks != cases * readers_per_case:
        raise RuntimeError(f"load seeding: assignment left cases unfilled: {assignment.as_dict()}")
    return Seeded(accounts, cases, tasks, time.monotonic() - started)


# -- afterwards ------------------------------------------------------------------------


def wait_for_jobs(timeout: float = 120) -> dict[str, int]:
    """Until every job is finished (or the time is up); their count by state."""
    deadline = time.monotonic() + timeout
    while Job.objects.exclude(state__in=Job.FINISHED).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    counts: dict[str, int] = defaultdict(int)
    for state in Job.objects.values_list("state", flat=True):
        counts[state] += 1
    return dict(counts)


@dataclass
class Verdict:
    failures: list[str]
    lines: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


LOST, SILENT = "lost write", "conflict resolved silently"


def _content(row: Finding) -> dict:
    return {
        "finding_type": row.finding_type,
        "geometry": row.geometry,
        "attributes": row.attributes,
    }


def _check_key(key: str, writes: list[Write], row, content_of) -> list[tuple[str, str]]:
    """One finding's (or one read's case labels') writes against its row:
    [(LOST or SILENT, what)]."""
    found: list[tuple[str, str]] = []
    acked = [w for w in writes if w.acked]
    if not acked:
        return found
    versions = [w.version for w in acked if w.kind != "delete"]
    # Two saves accepted with one version: the second overwrote the first unseen.
    dupes = {v for v in versions if versions.count(v) > 1}
    creates = [w for w in acked if w.kind == "create"]
    if len(creates) > 1:  # a repeated create answers 200 with the first one
        dupes -= {creates[0].version}
    if dupes:
        found.append((SILENT, f"{key}: versions {sorted(dupes)} each acknowledged twice"))
    for w in acked:
        if w.kind in ("update", "label") and w.base and w.version != w.base + 1:
            found.append((SILENT, f"{key}: a save on version {w.base} answered {w.version}"))
    if any(w.kind == "delete" for w in acked):
        if row is not None:
            found.append((LOST, f"{key}: deleted (204) but still in the database"))
        return found
    last = max(acked, key=lambda w: (w.version or 0, w.seq))
    if row is None:
        return [*found, (LOST, f"{key}: acknowledged v{last.version}, not in the database")]
    now = content_of(row)
    if row.version < last.version:
        found.append((LOST, f"{key}: acknowledged v{last.version}, database has v{row.version}"))
    elif row.version == last.version and not same(now, last.content):
        found.append((LOST, f"{key}: v{row.version} in the database is not the acknowledged save"))
    elif row.version > last.version:
        # Only a save whose answer never came (timeout, 5xx) may be newer.
        unknown = [w for w in writes if not w.acked and not w.refused and w.seq > last.seq]
        if not any(same(now, w.content) for w in unknown):
            found.append((LOST, f"{key}: v{row.version} in the database was never sent"))
    # A save refused with 409 must not be what the database holds, unless the same
    # content was later sent again on the newer version and acknowledged.
    for w in writes:
        resent = any(a.acked and a.seq > w.seq and same(a.content, w.content) for a in writes)
        if w.status == 409 and same(now, w.content) and not resent:
            found.append((SILENT, f"{key}: holds the content of a save refused with 409"))
    return found


def verify(recorder: Recorder, *, job_timeout: float = 120) -> Verdict:
    """Every check; `failures` empty means the run kept every promise."""
    found: list[tuple[str, str]] = [
        (SILENT if "tabs" in p or "after a 409" in p else "reader", p) for p in recorder.problems
    ]
    by_key: dict[str, list[Write]] = defaultdict(list)
    for w in recorder.writes:
        by_key[w.key].append(w)
    finding_keys = [k for k in by_key if k.startswith("finding:")]
    rows = {
        f"finding:{f.uid}": f
        for f in Finding.objects.filter(uid__in=[k.split(":", 1)[1] for k in finding_keys])
    }
    for key in finding_keys:
        found += _check_key(key, by_key[key], rows.get(key), _content)
    label_keys = [k for k in by_key if k.startswith("label:")]
    labels = {
        f"label:{label.task_id}": label
        for label in CaseLabel.objects.filter(task_id__in=[int(k[6:]) for k in label_keys])
    }
    for key in label_keys:
        found += _check_key(key, by_key[key], labels.get(key), lambda row: row.values)
    submits = [w for w in recorder.writes if w.kind == "submit" and w.acked]
    states = dict(
        ReadingTask.objects.filter(pk__in=[w.task_id for w in submits]).values_list("pk", "state")
    )
    for w in submits:
        if states.get(w.task_id) != ReadingTask.State.SUBMITTED:
            found.append(
                (LOST, f"task:{w.task_id}: submit acknowledged, now {states.get(w.task_id)}")
            )

    lines = []
    acked = [w for w in recorder.writes if w.acked]
    lines.append(
        f"acknowledged writes checked against the database: {len(acked)} "
        f"({sum(w.kind == 'create' for w in acked)} creates, "
        f"{sum(w.kind == 'update' for w in acked)} finding saves, "
        f"{sum(w.kind == 'label' for w in acked)} case-label saves, "
        f"{sum(w.kind == 'delete' for w in acked)} deletes, {len(submits)} submits) "
        f"on {len(finding_keys)} findings and {len(label_keys)} case labels; "
        f"lost writes: {sum(c == LOST for c, _ in found)}"
    )
    races, refused = recorder.races, [w for w in recorder.writes if w.status == 409]
    lines.append(
        f"409 answers: {len(refused)} ({sum(w.code == 'version_conflict' for w in refused)} "
        f"version conflicts, {sum(w.code == 'read_locked' for w in refused)} read locked); "
        f"races: {sum(r.kind == 'finding' for r in races)} finding, "
        f"{sum(r.kind == 'label' for r in races)} case-label, "
        f"{sum(r.kind == 'create' for r in races)} double create; "
        f"conflicts resolved silently: {sum(c == SILENT for c, _ in found)}"
    )
    server = [s for s in recorder.samples if s.status and s.status >= 500]
    unanswered = [s for s in recorder.samples if s.status is None]
    for name, bad in (("5xx answers", server), ("requests without an answer", unanswered)):
        if bad:
            where: dict[str, int] = defaultdict(int)
            for s in bad:
                where[f"{s.endpoint} {s.status or s.error}"] += 1
            found.append(("server", f"{len(bad)} {name}: {dict(where)}"))
    lines.append(f"5xx answers: {len(server)}; requests without an answer: {len(unanswered)}")
    jobs = wait_for_jobs(job_timeout)
    bad_jobs = {s: n for s, n in jobs.items() if s != Job.State.SUCCEEDED}
    if bad_jobs:
        failed = Job.objects.exclude(state=Job.State.SUCCEEDED).values_list(
            "kind", "state", "error"
        )
        found.append(("jobs", f"jobs not succeeded: {bad_jobs}: {failed}"))
    lines.append(f"jobs queued by the run (settling cases): {jobs or 'none'}")
    return Verdict([f"{category}: {what}" for category, what in found], lines)
