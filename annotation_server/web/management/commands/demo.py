"""Seed a demo: people for every role, a lung-CT, a chest-radiograph and a fundus
photograph project with synthetic studies, and cases in every state from imported
to adjudicated.

The demo runs the product's own workflows, not hand-made rows: images come in
through the ingest pipeline, QC runs its rules, the assignment service picks the
readers, reads are saved and submitted through the reading services (the review
phase opens itself), and the settle job matches the reads and either accepts them
or opens arbitration. The lung project has a qualification test that reader4 has
not taken yet. The fundus project's JPEG photographs (both eyes of six patients,
fake PHI in their metadata and file names) come with a manifest through the
photo import, one delivery per site; its readers grade diabetic retinopathy, and
the disagreements the protocol's grade rule catches go to arbitration, one of
them arbitrated and signed.

Idempotent: running it again keeps existing data and resets the printed passwords.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

import fixtures
from annotation_server.accounts.models import Role, Site, UserProfile
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Candidate
from annotation_server.projects.label_schemas import shipped
from annotation_server.projects.models import Case, LabelSchema, Project
from annotation_server.projects.permissions import allow_project_creation
from annotation_server.projects.services import create_project, grant_role
from annotation_server.qualification import services as qualification
from annotation_server.quality.services import check_case, override_qc
from annotation_server.reading import services as reading
from annotation_server.reading.assignment import assign_project
from annotation_server.reading.models import ReadingTask
from fixtures import fundus as fundus_fixture

PEOPLE = [
    # username, roles, site, title, years, specialty
    ("manager", [Role.MANAGER], "S01", "other", None, "数据管理"),
    ("reader1", [Role.READER], "S01", "attending", 9, "胸部影像"),
    ("reader2", [Role.READER], "S02", "associate_chief", 16, "胸部影像"),
    ("reader3", [Role.READER], "S02", "attending", 6, "放射诊断"),
    ("arbitrator", [Role.ARBITRATOR], "S01", "chief", 28, "胸部影像"),
    ("reader4", [Role.READER], "S01", "resident", 3, "放射诊断"),
    ("arbitrator2", [Role.ARBITRATOR], "S02", "chief", 24, "胸部影像"),
    ("arbitrator3", [Role.ARBITRATOR], "S01", "associate_chief", 19, "胸部影像"),
]
READERS = ("reader1", "reader2", "reader3")
SITES = [("S01", "华东示范医院", "上海"), ("S02", "华北示范医院", "北京")]
NODULE_TYPES = {"solid": "solid", "part-solid": "part_solid", "ground-glass": "ground_glass"}
# The radiograph generator's lesion names -> the chest schema's finding types.
XR_TYPES = {"effusion": "pleural_effusion"}
# The fundus project: per patient, the DR grade of each eye (OD, OS) and the site of
# the visit. The fixture draws lesions for a grade but no macular oedema, so the demo
# reads DMO as present from grade 3 (severe NPDR) on.
FUNDUS_VISITS = [
    ("FP-1001", (0, 0), "S01"),
    ("FP-1002", (1, 2), "S01"),
    ("FP-1003", (2, 3), "S01"),
    ("FP-1004", (4, 3), "S02"),
    ("FP-1005", (0, 1), "S02"),
    ("FP-1006", (2, 1), "S02"),
]
FUNDUS_BLURRED = ("FP-1005", "OS")  # out of focus: image QC fails it, it stays in QC
# One reader grades these one step lower than the truth (arbitration under the
# "differ by 1" grade rule); the first is arbitrated and signed by the demo.
FUNDUS_DISAGREE = [("FP-1003", "OS"), ("FP-1002", "OS"), ("FP-1004", "OD")]
FUNDUS_READING = [("FP-1006", "OD"), ("FP-1006", "OS")]  # still being read


def _shipped_schema(key: str) -> LabelSchema:
    """A shipped schema's row; made from its JSON when missing (the migrations load
    them, but a database flushed since, as between tests, has lost those rows)."""
    spec = next(s for s in shipped() if s["key"] == key)
    row, _ = LabelSchema.objects.get_or_create(
        key=key,
        version=spec.get("version", 1),
        defaults={"name": spec["name"], "definition": spec["definition"]},
    )
    return row


def _import(project, datasets, *, site, user, prefix: str) -> Case:
    """Bring synthetic studies in the way a delivery comes: through the ingest
    pipeline, so the demo's images are de-identified like real ones."""
    items = []
    for j, ds in enumerate(datasets):
        data = fixtures.dataset_bytes(ds)
        items.append(Candidate(f"{prefix}/{j:04d}.dcm", len(data), lambda data=data: data))
    report = ingest(project, items, site=site, user=user, source="demo", run_qc=False)
    if not report.cases:
        raise RuntimeError(f"demo import of {prefix} created no case: {report.summary()}")
    return Case.objects.get(project=project, code=report.cases[0])


class Command(BaseCommand):
    help = "Create demo users, projects, synthetic studies and cases in every state."

    def add_arguments(self, parser):
        parser.add_argument("--ct-cases", type=int, default=8)
        parser.add_argument("--ct-slices", type=int, default=64)
        parser.add_argument("--xr-cases", type=int, default=6)
        parser.add_argument("--xr-size", type=int, default=2048)
        parser.add_argument(
            "--fundus-size",
            type=int,
            default=800,
            help="Side of the fundus photographs in pixels (QC warns below 800).",
        )
        parser.add_argument("--password", help="Use this password for every demo account.")

    def handle(self, *args, **opts):
        sites = {
            code: Site.objects.get_or_create(code=code, defaults={"name": name, "region": region})[
                0
            ]
            for code, name, region in SITES
        }
        passwords = self._people(sites, opts["password"])
        people = {u.username: u for u in get_user_model().objects.filter(username__in=passwords)}
        allow_project_creation(people["manager"])  # the console's "New project", not staff
        lung = self._lung_project(people, sites, opts["ct_cases"], opts["ct_slices"])
        chest = self._chest_project(people, sites, opts["xr_cases"], opts["xr_size"])
        self._burned_in(chest, people, sites)
        fundus = self._fundus_project(people, sites, opts["fundus_size"])
        self._fundus_arbitration(fundus, people, passwords)
        # The agreement page shows figures from the start (agreement app).
        from annotation_server.agreement import services as agreement

        self._prelabel(lung, people, "lung-nodule")
        self._prelabel(chest, people, "chest-radiograph")
        agreement.store(lung, by=people.get("manager"))
        self._freeze_version(lung, people)
        self._evaluate_product(lung, people)
        self._periodic(lung, people)
        self.stdout.write(self.style.SUCCESS("\nDemo ready."))
        for project in (lung, chest, fundus):
            counts = {s: project.cases.filter(state=s).count() for s in Case.State.values}
            self.stdout.write(
                f"  {project.slug}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            )
        self.stdout.write("\nAccounts (username / password / role):")
        for username, password in passwords.items():
            role = (
                "admin"
                if username == "admin"
                else next(p[1][0] for p in PEOPLE if p[0] == username)
            )
            self.stdout.write(f"  {username:<11} {password:<16} {role}")
        self.stdout.write("")

    def _prelabel(self, project, people, model: str):
        """A built-in model proposes findings on every case (the reading app's
        prelabel run, as the Model assistance page starts it): readers see them in
        the blind phase at 50% confidence and above, except on the quarter of cases
        the seeded no-assistance arm keeps unassisted."""
        from annotation_server.reading import assist
        from annotation_server.reading.models import Proposal

        if Proposal.objects.filter(case__project=project).exists():
            return
        type(project.protocol).objects.filter(pk=project.protocol.pk).update(
            prelabel_visibility="shown",
            prelabel_min_confidence=0.5,
            unassisted_fraction=0.25,
            unassisted_seed=7,
        )
        row = assist.resolve_version(model, by=people["manager"])
        report = assist.run_prelabel(project, row)
        self.stdout.write(
            f"  {row.name} {row.version}: {report.proposals} proposals on "
            f"{_count(report.cases, 'case')} ({report.model_s:.1f} s of inference)"
        )

    def _freeze_version(self, project, people):
        """Version 1.0.0 of the adjudicated cases, frozen (datasets app)."""
        from annotation_server.datasets import services as datasets

        if project.dataset_versions.exists():
            return
        self._wait_for_jobs(project)  # the settle jobs, when Celery workers run them
        if not datasets.eligible_cases(project).exists():
            return
        version = datasets.freeze(
            datasets.create_draft(
                project,
                version="1.0.0",
                by=people["manager"],
                title="Demo lung CT reference set",
                all_adjudicated=True,
            ),
            by=people["manager"],
        )
        self.stdout.write(
            f"  dataset version {version.version} frozen: {_count(version.cases.count(), 'case')}"
        )
        # ... and exported: the version page lists the package to download.
        from annotation_server.datasets.export_jobs import queue_export

        job = queue_export(version, user=people["manager"])
        self.stdout.write(f"  export of {version.version} queued (job {job.pk})")

    def _evaluate_product(self, project, people):
        """An AI product scored against version 1.0.0 (the datasets app's
        evaluation kit): a synthetic LUNA16 submission made from the reference
        (most nodules found, centres off by up to a millimetre, one in seven
        missed) plus one to three false positives per scan, on the largest split
        the manager may see. Its report is on the version's Evaluations page."""
        import random

        from annotation_server.datasets import evaluation_jobs

        version = project.dataset_versions.filter(frozen=True, version="1.0.0").first()
        if version is None or version.evaluations.exists():
            return
        self._wait_for_jobs(project)  # the export: the result names its MANIFEST hash
        sizes = {
            split: version.cases.filter(split=split, retired=False).count()
            for split in ("train", "validation")
        }
        split = max(sizes, key=lambda k: sizes[k])
        if not sizes[split]:
            return
        truth, _source = evaluation_jobs.truth_for(version, split)
        rng = random.Random(15)
        rows = ["seriesuid,coordX,coordY,coordZ,probability"]
        for lesion in truth.lesions:
            scan = truth.scan(lesion.series_uid)
            if lesion.excluded or not lesion.centre_mm or not scan.contains_mm(*lesion.centre_mm):
                continue
            if rng.random() < 1 / 7:
                continue  # missed
            point = [c + rng.uniform(-1.0, 1.0) for c in lesion.centre_mm]
            if not scan.contains_mm(*point):
                point = list(lesion.centre_mm)
            rows.append(
                f"{lesion.series_uid},{point[0]:.2f},{point[1]:.2f},{point[2]:.2f},"
                f"{rng.uniform(0.55, 0.98):.3f}"
            )
        for scan in truth.scans:
            grid = scan.grid
            slices, n_rows, n_cols = scan.shape
            for _ in range(rng.randint(1, 3)):
                k = rng.randrange(slices)
                row, col = rng.uniform(0, n_rows - 1), rng.uniform(0, n_cols - 1)
                point = [
                    grid.positions[k][i]
                    + grid.row_cosine[i] * col * grid.pixel_spacing[1]
                    + grid.column_cosine[i] * row * grid.pixel_spacing[0]
                    for i in range(3)
                ]
                rows.append(
                    f"{scan.series_uid},{point[0]:.2f},{point[1]:.2f},{point[2]:.2f},"
                    f"{rng.uniform(0.05, 0.7):.3f}"
                )
        evaluation = evaluation_jobs.request_evaluation(
            version,
            user=people["manager"],
            data=("\n".join(rows) + "\n").encode(),
            filename="demo-cad_luna16.csv",
            product="Demo CAD (synthetic)",
            split=split,
            operating_threshold=0.5,
        )
        self.stdout.write(
            f"  evaluation {evaluation.pk} of a synthetic product against "
            f"{version.version} ({split}) queued"
        )

    def _periodic(self, project, people) -> None:
        """What the periodic jobs show: reader1's open lung read is two days past
        its due date, so the overdue reminder (run here as beat would) puts it on
        reader1's home page; the nightly audit-chain check has run."""
        from annotation_server.web import periodic

        task = (
            ReadingTask.objects.operational()
            .filter(case__project=project, reader=people["reader1"])
            .exclude(state=ReadingTask.State.SUBMITTED)
            .order_by("pk")
            .first()
        )
        if task is not None:
            ReadingTask.objects.filter(pk=task.pk).update(due_at=timezone.now() - timedelta(days=2))
        reminder = periodic.run_now("overdue_reminders")
        audit = periodic.run_now("verify_audit")
        intact = audit.state == "succeeded" and (audit.result or {}).get("ok")
        self.stdout.write(
            f"  periodic: {(reminder.result or {}).get('reads', 0)} overdue read(s) reminded; "
            f"audit chain {'intact' if intact else 'NOT intact: ' + (audit.error or '')[:200]}"
        )

    def _wait_for_jobs(self, project, timeout_s: float = 300) -> None:
        import time

        from annotation_server.jobs.models import Job

        deadline = time.monotonic() + timeout_s
        pending = Job.objects.filter(project=project).exclude(state__in=Job.FINISHED)
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(0.5)

    # people -----------------------------------------------------------------

    def _people(self, sites, fixed_password: str | None) -> dict[str, str]:
        User = get_user_model()
        passwords = {}
        admin, _ = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        passwords["admin"] = fixed_password or secrets.token_urlsafe(9)
        admin.set_password(passwords["admin"])
        admin.save()
        UserProfile.objects.get_or_create(
            user=admin, defaults={"pseudonym": "AD001", "roles": [Role.ADMIN]}
        )
        for i, (username, roles, site, title, years, specialty) in enumerate(PEOPLE, 1):
            user, _ = User.objects.get_or_create(username=username)
            passwords[username] = fixed_password or secrets.token_urlsafe(9)
            user.set_password(passwords[username])
            user.save()
            UserProfile.objects.get_or_create(
                user=user,
                defaults={
                    "pseudonym": f"{'RD' if Role.READER in roles else 'EX'}{i:03d}",
                    "roles": list(roles),
                    "site": sites[site],
                    "title": title,
                    "years_experience": years,
                    "specialty": specialty,
                    "training_date": timezone.now().date() - timedelta(days=30),
                },
            )
        return passwords

    # projects ---------------------------------------------------------------

    def _project(self, people, slug, **kwargs):
        existing = Project.objects.filter(slug=slug).first()
        if existing:
            self.stdout.write(f"{slug}: exists, keeping its data")
            return existing, False
        project = create_project(slug=slug, user=people["manager"], **kwargs)
        project.status = Project.Status.ACTIVE
        project.save(update_fields=["status"])
        grant_role(project, people["manager"], Role.MANAGER)
        for name in READERS:  # qualified earlier; reader4 has the test still to take
            membership = grant_role(project, people[name], Role.READER)
            membership.qualified = True
            membership.save()
        grant_role(project, people["reader4"], Role.READER)
        for name in ("arbitrator", "arbitrator2", "arbitrator3"):
            grant_role(project, people[name], Role.ARBITRATOR)
        return project, True

    @transaction.atomic
    def _lung_project(self, people, sites, n_cases, slices):
        project, new = self._project(
            people,
            "demo-lung-ct",
            name="肺结节 CT 参考数据集（演示）",
            description="Synthetic chest CT with planted nodules of known size and type.",
            label_schema=_shipped_schema("lung-nodule-ct"),
            task_type=Project.TaskType.DETECTION_3D,
            modality="CT",
            body_part="CHEST",
            protocol={
                "readers_per_case": 3,
                "review_phase": True,
                "match_rule": "distance_or_inside",
                "match_threshold": 5.0,
                "auto_accept_min_readers": 3,
                "drop_below_readers": 1,
                "arbitration_mode": "two_blind_tiebreak",
            },
            qc_profile={"base": "CT", "min_slices": 16},
        )
        if not new:
            return project
        plan = self._state_plan(n_cases)
        vendors = list(fixtures.CT_VENDORS)
        cases = []
        # The first case in reading comes as a study of two series, as a CT study
        # usually does: its thin lung series (the case) and a 5 mm soft-tissue
        # reconstruction of the same scan, which the workstation's series panel
        # shows beside it (imported after the others, so their codes stay put).
        extra_series = []
        for i, state in enumerate(plan):
            site = sites["S01" if i % 2 == 0 else "S02"]
            options = {"slices": slices, "seed": 100 + i, "manufacturer": vendors[i % len(vendors)]}
            if state == "reading" and not extra_series:
                (datasets, truth), (recon, _) = fixtures.build_ct_study(**options)
                extra_series.append((recon, site, i))
            else:
                datasets, truth = fixtures.build_ct_datasets(
                    **options,
                    # the case waiting in QC is a 5 mm reconstruction the profile rejects
                    defect="thick-slices" if state == "qc" else None,
                )
            case = _import(
                project, datasets, site=site, user=people["manager"], prefix=f"lung-{i + 1:04d}"
            )
            self.stdout.write(f"  {case.code}: {len(datasets)} slices, planned {state}")
            cases.append((case, state, truth))
        for recon, site, i in extra_series:
            case = _import(
                project, recon, site=site, user=people["manager"], prefix=f"lung-{i + 1:04d}-5mm"
            )
            self.stdout.write(
                f"  {case.code}: {len(recon)} slices, a 5 mm reconstruction in the study of "
                f"{cases[i][0].code} (left imported)"
            )
        self._qualification(project, people, sites, slices)
        self._read_cases(project, cases, people)
        return project

    def _qualification(self, project, people, sites, slices):
        """A qualification set of three cases with their planted nodules as the
        reference; each attempt reads one case the reader has not read before."""
        manager = people["manager"]
        test = qualification.create_test(
            project,
            name="肺结节阅片资格考核",
            by=manager,
            min_sensitivity=0.85,
            max_fp_per_case=1.0,
            max_attempts=3,
            cases_per_attempt=1,
        )
        for n in range(3):
            datasets, truth = fixtures.build_ct_datasets(slices=slices, seed=900 + n)
            case = _import(
                project, datasets, site=sites["S02"], user=manager, prefix=f"lung-qual-{n + 1}"
            )
            check_case(case)
            qualification.add_case(test, case, by=manager)
            reference = [
                {"finding_type": t, "geometry": g, "attributes": a}
                for t, g, a in self._marks(truth)
            ]
            qualification.import_reference(
                case, reference, by=manager, source="demo: planted truth"
            )
            self.stdout.write(
                f"  {case.code}: qualification case, {len(reference)} reference nodules"
            )

    @transaction.atomic
    def _chest_project(self, people, sites, n_cases, size):
        project, new = self._project(
            people,
            "demo-chest-xr",
            name="胸部 X 线参考数据集（演示）",
            description="Synthetic PA chest radiographs with localised findings.",
            label_schema=_shipped_schema("chest-radiograph"),
            task_type=Project.TaskType.CLASSIFICATION_2D,
            modality="CR,DX",
            body_part="CHEST",
            protocol={
                "readers_per_case": 3,
                "match_rule": "overlap_iou",
                "match_threshold": 0.3,
                "auto_accept_min_readers": 2,
            },
        )
        if not new:
            return project
        cases = []
        for i, state in enumerate(self._state_plan(n_cases)):
            site = sites["S02" if i % 2 == 0 else "S01"]
            ds, truth = fixtures.build_xr_dataset(
                seed=200 + i,
                size=size,
                modality="CR" if i % 2 else "DX",
                photometric="MONOCHROME1" if i % 3 == 2 else "MONOCHROME2",
                # the case waiting in QC is over-exposed: the profile rejects it
                defect="over-exposed" if state == "qc" else None,
            )
            case = _import(
                project, [ds], site=site, user=people["manager"], prefix=f"cxr-{i + 1:04d}"
            )
            self.stdout.write(
                f"  {case.code}: {ds.Rows}x{ds.Columns} {ds.Modality}, planned {state}"
            )
            cases.append((case, state, truth))
        self._read_cases(project, cases, people)
        return project

    def _burned_in(self, project, people, sites) -> None:
        """A radiograph with the patient's name, ID and date burned into its corner and
        a header that does not say so: the OCR at ingest holds it in quarantine for
        the manager to redact (Quarantine page of the chest project)."""
        from annotation_server.imaging.models import Quarantine

        if Quarantine.objects.filter(project=project).exists():
            return
        ds, _ = fixtures.build_xr_dataset(seed=299, size=1024, defect="burned-in-text")
        ds.BurnedInAnnotation = "NO"
        data = fixtures.dataset_bytes(ds)
        item = Candidate("cxr-burned/0000.dcm", len(data), lambda: data)
        report = ingest(
            project, [item], site=sites["S01"], user=people["manager"], source="demo", run_qc=False
        )
        self.stdout.write(
            f"  burned-in radiograph: {report.summary()['quarantined']} held in quarantine"
        )

    # fundus photographs -------------------------------------------------------

    @transaction.atomic
    def _fundus_project(self, people, sites, size: int):
        """Fundus photographs through the photo import (JPEG + manifest.csv, one
        delivery per site), image QC (the blurred one fails and stays in QC; a
        small demo size only warns), three readers per case with the fundus-dr
        schema, and reads graded from the fixture's truth: most agree (settled by
        auto-consensus), three differ by one grade (arbitration), two are still
        being read."""
        project, new = self._project(
            people,
            "demo-fundus-dr",
            name="糖尿病视网膜病变眼底照相参考数据集（演示）",
            description="Synthetic colour fundus photographs graded for diabetic retinopathy.",
            label_schema=_shipped_schema("fundus-dr"),
            task_type=Project.TaskType.CLASSIFICATION_2D,
            modality="OP",
            protocol={
                "readers_per_case": 3,
                "auto_accept_min_readers": 3,
                "grade_rule": "difference",
                "grade_difference": 1,
            },
        )
        if not new:
            return project
        project.sites.set(sites.values())
        manager = people["manager"]
        truth = _fundus_grades()
        for code in sorted({site for _, _, site in FUNDUS_VISITS}):
            items, rows = [], ["filename,patient_id,visit_id,laterality,camera"]
            for n, (patient, grades, site) in enumerate(FUNDUS_VISITS):
                if site != code:
                    continue
                for eye, grade in zip(("OD", "OS"), grades, strict=True):
                    blurred = (patient, eye) == FUNDUS_BLURRED
                    rgb, meta = fundus_fixture.build_fundus(
                        500 + 2 * n + (eye == "OS"),
                        "blur" if blurred else None,
                        size=size,
                        grade=grade,
                        laterality=eye,
                    )
                    data = fundus_fixture.encode_photo(rgb, meta, "jpeg")
                    name = f"{code}/{fundus_fixture.file_name(meta, 'jpeg')}"
                    items.append(Candidate(name, len(data), lambda data=data: data))
                    camera = f"{meta['camera']['manufacturer']} {meta['camera']['model']}"
                    rows.append(f"{name},{patient},{patient}-V1,{eye},{camera}")
            manifest = ("\n".join(rows) + "\n").encode()
            items.append(Candidate("manifest.csv", len(manifest), lambda m=manifest: m))
            report = ingest(
                project, items, site=sites[code], user=manager, source="demo", run_qc=False
            )
            self.stdout.write(
                f"  fundus photographs at {code}: {report.summary()['imported']} imported "
                f"with their manifest, {report.summary()['rejected']} refused"
            )
        cases = self._fundus_cases(project)
        for key, case in sorted(cases.items()):
            report = check_case(case)
            if report.status == "fail" and key != FUNDUS_BLURRED:
                override_qc(case, by=manager, reason="demo: small synthetic photograph")
        assignment = assign_project(project, by=manager)
        self.stdout.write(
            f"  assignment: {len(assignment.filled_cases)} fundus cases given 3 readers each"
        )
        for key, case in sorted(cases.items()):
            tasks = list(
                ReadingTask.objects.operational()
                .filter(case=case, phase=1)
                .select_related("reader")
                .order_by("reader__username")
            )
            if not tasks:
                continue
            grade = truth[key]
            if key in FUNDUS_READING:
                reading_no = FUNDUS_READING.index(key)
                self._grade(tasks[0], grade, submit=reading_no == 1)
                continue
            for i, task in enumerate(tasks):
                lower = key in FUNDUS_DISAGREE and i == len(tasks) - 1
                self._grade(task, grade - 1 if lower else grade, submit=True)
        return project

    def _fundus_cases(self, project) -> dict[tuple[str, str], Case]:
        """The project's cases by (patient, eye): the patient from the keyed
        pseudonym, the eye from the stored photograph's ImageLaterality."""
        import pydicom

        from annotation_server.imaging import storage
        from annotation_server.imaging.deid import Deidentifier
        from annotation_server.imaging.ingest import keys

        deid = Deidentifier(keys.project_secret(project))
        patients = {deid.pseudonym(p): p for p, _, _ in FUNDUS_VISITS}
        out = {}
        for case in Case.objects.filter(project=project).select_related("series__study"):
            instance = case.series.instances.order_by("slice_index").first()
            with storage.open_instance(instance.file) as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
            eye = {"R": "OD", "L": "OS"}[str(ds.ImageLaterality)]
            out[(patients[case.series.study.patient_pseudo_id], eye)] = case
        return out

    def _grade(self, task, grade: int, *, submit: bool) -> None:
        reader = task.reader
        reading.start(task, reader)
        values = {"dr_grade": grade, "dmo": "present" if grade >= 3 else "absent"}
        reading.save_case_label(task, reader, values, expected_version=None)
        if submit:
            reading.submit(task, reader, expected_version=None, active_seconds=75)
        else:
            reading.record_active_time(task, reader, 40)

    def _fundus_arbitration(self, project, people, passwords) -> None:
        """The first disagreement is arbitrated: its arbitrator decides the disputed
        answers as the fixture's truth says and signs with the password."""
        from annotation_server.adjudication.models import ArbitrationTask
        from annotation_server.adjudication.services import arbitration

        tasks = ArbitrationTask.objects.filter(case__project=project)
        if tasks.filter(state=ArbitrationTask.State.SIGNED).exists():
            return
        self._wait_for_jobs(project)  # the settle jobs, when Celery workers run them
        cases = {case.pk: key for key, case in self._fundus_cases(project).items()}
        grades = _fundus_grades()
        for task in tasks.select_related("arbitrator").order_by("case__code"):
            key = cases.get(task.case_id)
            if key != FUNDUS_DISAGREE[0]:
                continue
            grade = grades[key]
            truth = {"dr_grade": grade, "dmo": "present" if grade >= 3 else "absent"}
            decisions = {
                "labels": {
                    k: {"value": truth[k], "reason_code": "label_confirmed"}
                    for k in task.items.get("labels", [])
                }
            }
            user = task.arbitrator
            task = arbitration.save_decisions(task, user, decisions, expected_version=task.version)
            arbitration.sign(task, user, passwords[user.username], expected_version=task.version)
            task.case.refresh_from_db()
            self.stdout.write(
                f"  {task.case.code}: DR grade arbitrated by {user.username} and signed "
                f"({task.case.state})"
            )
            return

    @staticmethod
    def _state_plan(n: int) -> list[str]:
        """Spread n cases over the life cycle, most of them in reading."""
        head = ["imported", "qc", "arbitration", "adjudicated"]
        if n <= len(head):
            return (["reading"] + head)[:n]
        return head[:2] + ["reading"] * (n - len(head)) + head[2:]

    # case states ------------------------------------------------------------

    def _read_cases(self, project, cases, people):
        """QC, assignment, reads and settling, each through its service."""
        manager = people["manager"]
        for case, state, _truth in cases:
            if state == "imported":
                continue
            report = check_case(case)  # the real image-QC rules, under the project's profile
            if report.status == "fail" and state != "qc":
                override_qc(case, by=manager, reason="demo: accepted for demonstration")
        assignment = assign_project(project, by=manager)
        self.stdout.write(
            f"  assignment: {len(assignment.filled_cases)} cases given "
            f"{project.protocol.readers_per_case} readers each"
        )
        reading_no = 0
        for case, state, truth in cases:
            tasks = list(
                ReadingTask.objects.operational()
                .filter(case=case, phase=1)
                .select_related("reader")
                .order_by("reader__username")
            )
            if state == "reading":
                reading_no += 1
                if reading_no % 2 == 1:  # reader1 has started: a draft finding
                    self._read(tasks[0], truth, submit=False, keep=1)
                if reading_no % 3 == 1:  # reader2 has finished
                    self._read(tasks[1], truth, submit=True)
            elif state in ("arbitration", "adjudicated"):
                # Every read submitted; arbitration cases carry a real disagreement
                # (one reader misses a lesion and rates the image differently).
                disagree = state == "arbitration"
                for i, task in enumerate(tasks):
                    self._read(
                        task,
                        truth,
                        submit=True,
                        keep=(2 - i % 2) if disagree else None,
                        quality_low=disagree and i == 1,
                    )
                # The review phase (if any) opened itself; the readers keep their marks.
                for task in ReadingTask.objects.filter(case=case, phase=2).select_related("reader"):
                    reading.submit(task, task.reader, expected_version=None, active_seconds=95)

    def _marks(self, truth):
        """(finding_type, geometry, attributes) for each planted lesion."""
        if truth["kind"] == "ct":
            ps = truth["geometry"]["pixel_spacing_mm"][0]
            for nodule in truth["nodules"]:
                col, row, index = (float(v) for v in nodule["centre_voxel"])
                index = int(index)
                diameter = float(nodule["diameter_mm"])
                r = max(2.0, diameter / ps / 2)
                yield (
                    "nodule",
                    {
                        "kind": "ellipse",
                        "centre_mm": [float(v) for v in nodule["centre_mm"]],
                        "shapes": [
                            {
                                "slice_index": index,
                                "points": [[col - r, row - r], [col + r, row + r]],
                            }
                        ],
                    },
                    {
                        "nodule_type": NODULE_TYPES.get(nodule["type"], "solid"),
                        "long_axis_mm": round(diameter, 1),
                        "malignancy": 3,
                    },
                )
        else:
            for finding in truth["findings"]:
                x0, y0, x1, y1 = finding["box"]
                yield (
                    XR_TYPES.get(finding["type"], finding["type"]),
                    {
                        "kind": "box",
                        "centre_mm": None,
                        "shapes": [{"slice_index": 0, "points": [[x0, y0], [x1, y1]]}],
                    },
                    {"confidence": 3},
                )

    def _case_values(self, truth, n_marks, quality_low=False):
        if truth["kind"] == "ct":
            return {"nodules_present": n_marks > 0, "image_quality": 1 if quality_low else 3}
        found = sorted({XR_TYPES.get(f["type"], f["type"]) for f in truth["findings"]})
        return {"findings": found or ["no_finding"], "image_quality": 4 if quality_low else 2}

    def _read(self, task, truth, *, submit: bool, keep: int | None = None, quality_low=False):
        reader = task.reader
        marks = list(self._marks(truth))
        if keep is not None:
            marks = marks[:keep]
        reading.start(task, reader)
        for finding_type, geometry, attrs in marks:
            reading.save_finding(
                task, reader, finding_type=finding_type, geometry=geometry, attributes=attrs
            )
        reading.save_case_label(
            task, reader, self._case_values(truth, len(marks), quality_low), expected_version=None
        )
        if submit:
            reading.submit(task, reader, expected_version=None, active_seconds=340)
        else:
            reading.record_active_time(task, reader, 120)


def _count(n: int, noun: str) -> str:
    """ "1 case", "2 cases" (the command's console output is English)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _fundus_grades() -> dict[tuple[str, str], int]:
    """The fixture's DR grade of each (patient, eye) of FUNDUS_VISITS."""
    return {
        (patient, eye): grade
        for patient, grades, _ in FUNDUS_VISITS
        for eye, grade in zip(("OD", "OS"), grades, strict=True)
    }
