"""Every URL the project serves, made concrete for one scenario, and the personas
that request them. Used by the route sweep and the blinding sweep.

The routes come from Django's resolver, not from a list kept by hand, so a new
endpoint is swept the day it is added; `ROUTE_ACCESS` in test_route_sweep.py
then has to say who may read it, or the sweep fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import fixtures
from annotation_server.accounts.models import Role
from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.datasets.models import DatasetVersion
from annotation_server.imaging.models import PacsConnection
from annotation_server.imaging.services import index_datasets
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role
from annotation_server.qualification.models import QualificationAttempt, QualificationTest
from annotation_server.reading import services as reading
from annotation_server.reading.models import ReadingTask
from tests import factories

# Personas of the sweep. "other" holds roles in another project only; "unqualified"
# is a reader of the project who has not passed its active qualification test.
PERSONAS = (
    "anonymous",
    "reader",
    "reader2",
    "unqualified",
    "arbitrator",
    "manager",
    "other",
    "admin",
)

# Routes not swept: Django's admin (staff only, Django's own permission checks).
SKIPPED_PREFIXES = ("admin/",)


@dataclass(frozen=True)
class Route:
    name: str  # unique: the URL name, "~project" added where DICOMweb repeats it per project
    pattern: str  # the resolver's pattern text, converters included
    path: str  # concrete, for the scenario

    @property
    def names_objects(self) -> bool:
        """The path names something of a project (the project, a case, a task...),
        not just a list. Sites are not a project's: their detail is admin-only and
        answers everyone else alike."""
        return "<" in self.pattern and not self.name.startswith("site-")


@dataclass
class Scenario:
    """One lung project in reading with real images, a case in arbitration, an
    active qualification test, and another project."""

    users: dict[str, object]
    project: object
    case: object
    disputed: object
    tasks: dict[str, object]
    finding: object
    series: object
    instance: object
    study_uid: str
    series_uid: str
    sop_uid: str
    arbitration: object
    qualification: object
    attempt: object
    job: object
    pacs: object
    other_project: object
    secrets: list[str] = field(default_factory=list)  # what "other" must never see
    quarantine: object = None  # a burned-in image held for the manager's review
    evaluation: object = None  # an AI product's finished evaluation against the version
    proposal: object = None  # a model proposal on the case (the protocol hides proposals)


def build_scenario(site) -> Scenario:
    people = {
        name: factories.UserFactory(username=f"sweep_{name}", profile__site=site)
        for name in PERSONAS
        if name not in ("anonymous",)
    }
    admin = people["admin"]
    admin.is_superuser = admin.is_staff = True
    admin.save()
    project = factories.ProjectFactory(slug="sweep-lung", name="Sweep lung CT")
    for name in ("reader", "reader2", "unqualified"):
        grant_role(project, people[name], Role.READER)
    grant_role(project, people["arbitrator"], Role.ARBITRATOR)
    grant_role(project, people["manager"], Role.MANAGER)
    other_project = factories.ProjectFactory(slug="sweep-other", name="Another project")
    grant_role(other_project, people["other"], Role.MANAGER)
    grant_role(other_project, people["other"], Role.READER)
    grant_role(other_project, people["other"], Role.ARBITRATOR)

    datasets, _ = fixtures.build_ct_datasets(slices=3, seed=91, matrix=64)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code="SWEEP01", series=series, state="reading", qc_status="pass"
    )
    tasks = {
        name: ReadingTask.objects.create(case=case, reader=people[name], phase=1)
        for name in ("reader", "reader2")
    }
    finding = reading.save_finding(
        tasks["reader"],
        people["reader"],
        finding_type="nodule",
        geometry=factories.nodule_geometry(slice_index=1),
        attributes=factories.complete_nodule_attributes(),
    )
    disputed = factories.CaseFactory(project=project, code="SWEEP02", state="arbitration")
    arbitration = ArbitrationTask.objects.create(case=disputed, arbitrator=people["arbitrator"])
    qualification = QualificationTest.objects.create(project=project, name="Sweep test")
    project.memberships.filter(user__in=[people["reader"], people["reader2"]]).update(
        qualified=True
    )
    attempt = QualificationAttempt.objects.create(
        test=qualification, reader=people["unqualified"], number=1
    )
    job = Job.objects.create(
        kind="audit.verify_chain", project=project, created_by=people["manager"]
    )
    pacs = PacsConnection.objects.create(
        project=project, name="Sweep PACS", base_url="http://127.0.0.1:9/dicom-web"
    )
    instance = series.instances.order_by("slice_index").first()
    DatasetVersion.objects.create(project=project, version="1.0.0", created_by=people["manager"])
    evaluation = _evaluation(project, people["manager"])
    held = _quarantined(project)
    proposal = _proposal(case)
    return Scenario(
        users=people,
        project=project,
        case=case,
        disputed=disputed,
        tasks=tasks,
        finding=finding,
        series=series,
        instance=instance,
        study_uid=series.study.study_uid,
        series_uid=series.series_uid,
        sop_uid=instance.sop_instance_uid,
        arbitration=arbitration,
        qualification=qualification,
        attempt=attempt,
        job=job,
        pacs=pacs,
        other_project=other_project,
        quarantine=held,
        evaluation=evaluation,
        proposal=proposal,
        secrets=[
            project.slug,
            case.code,
            disputed.code,
            series.series_uid,
            series.study.study_uid,
            str(finding.uid),
        ],
    )


def _proposal(case):
    """A model proposal on the case, by a registered model version."""
    from annotation_server.reading.models import AssistModelVersion, Proposal

    model = AssistModelVersion.objects.create(
        name="sweep-model",
        version="1",
        task="detection",
        weights_sha256="0" * 64,
        source=AssistModelVersion.Source.PLUGIN,
    )
    return Proposal.objects.create(
        case=case,
        series=case.series,
        model_version=model,
        finding_type="nodule",
        geometry=factories.nodule_geometry(slice_index=1),
        score=0.9,
    )


def _evaluation(project, manager):
    """A finished evaluation (train split: no special permission) of a frozen
    version 0.9.0, as the evaluation job leaves one; its submission stored
    content-addressed. (The evaluation routes are swept on 0.9.0: the draft
    1.0.0 has none, since only a frozen version can be evaluated against.)"""
    import hashlib

    from annotation_server.datasets import evaluation_jobs
    from annotation_server.datasets.models import Evaluation

    version = DatasetVersion.objects.create(
        project=project, version=EVALUATED_VERSION, created_by=manager, frozen=True
    )

    data = b"seriesuid,coordX,coordY,coordZ,probability\n"
    sha = hashlib.sha256(data).hexdigest()
    evaluation_jobs.store(evaluation_jobs.submission_key(sha), data)
    return Evaluation.objects.create(
        project=version.project,
        dataset_version=version,
        split="train",
        product="Sweep CAD",
        kind="detection",
        submission_name="sweep.csv",
        submission_key=evaluation_jobs.submission_key(sha),
        submission_sha256=sha,
        submission_bytes=len(data),
        rule="centre_distance",
        rule_threshold=5.0,
        status=Evaluation.Status.SUCCEEDED,
        result={
            "kit_version": "1.0.0",
            "kind": "detection",
            "product": "Sweep CAD",
            "dataset": {"id": "sweep-lung", "version": "1.0.0", "split": "train"},
            "submission": {"sha256": sha, "rows": 0, "warnings": []},
            "conventions": {"rule": "centre_distance", "threshold": 5.0},
            "figures": {"cpm": {"value": 0.5, "ci": [0.4, 0.6]}},
            "counts": {"scans": 1, "lesions": 0},
        },
        created_by=manager,
    )


def _quarantined(project):
    """A burned-in radiograph stored and held in quarantine, as ingest leaves it."""
    from annotation_server.imaging.models import Quarantine
    from annotation_server.imaging.services import store

    ds, _ = fixtures.build_xr_dataset(seed=92, size=128, defect="burned-in-text")
    entry = store(ds)
    return Quarantine.objects.create(
        project=project,
        reason="BurnedInAnnotation is YES",
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        modality="DX",
        sha256=entry.sha256,
        file=entry.key,
        text_boxes=[],
    )


def _walk(patterns, prefix=""):
    from django.urls import URLResolver

    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p.name


def all_patterns() -> list[tuple[str, str]]:
    """(pattern, name) of every route, in resolver order, admin excepted."""
    from django.urls import get_resolver

    out = []
    for pattern, name in _walk(get_resolver().url_patterns):
        if pattern.startswith(SKIPPED_PREFIXES):
            continue
        out.append((pattern, name))
    return out


# Router detail routes: basename -> the scenario object their pk names.
_DETAIL_OBJECTS = {
    "site": lambda s: s.users["reader"].profile.site_id,
    "case": lambda s: s.case.pk,
    "study": lambda s: s.series.study_id,
    "series": lambda s: s.series.pk,
    "instance": lambda s: s.instance.pk,
    "readingtask": lambda s: s.tasks["reader"].pk,
    "finding": lambda s: s.finding.pk,
    "qualificationtest": lambda s: s.qualification.pk,
    "qualificationattempt": lambda s: s.attempt.pk,
    "arbitrationtask": lambda s: s.arbitration.pk,
    "cluster": lambda s: 999_999,  # none in this scenario: the not-found path
    "referencefinding": lambda s: 999_999,
    "adjudication": lambda s: s.disputed.pk,
    "job": lambda s: s.job.pk,
    "datasetversion": lambda s: DatasetVersion.objects.get(project=s.project, version="1.0.0").pk,
    "writeback": lambda s: _writeback_destination(s).pk,
    "outbox": lambda s: _outbox_item(s).pk,
}


def _writeback_destination(s: Scenario):
    from annotation_server.outbox.models import Destination

    return Destination.objects.get_or_create(
        project=s.project, name="Sweep archive", defaults={"kind": "research", "connection": s.pacs}
    )[0]


def _outbox_item(s: Scenario):
    from annotation_server.outbox.models import OutboxItem

    return OutboxItem.objects.get_or_create(
        destination=_writeback_destination(s),
        sop_instance_uid="2.25.1",
        defaults={
            "project": s.project,
            "transport": "stow",
            "status": "delivered",
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.66.4",
            "study_uid": s.study_uid,
            "series_uid": "2.25.2",
            "sha256": "0" * 64,
            "object_key": "outbox/sweep.dcm",
            "carries": "reference_seg",
            "case": s.case,
        },
    )[0]


# The frozen version the scenario's evaluation belongs to (see _evaluation).
EVALUATED_VERSION = "0.9.0"
EVALUATION_ROUTES = (
    "evaluations",
    "evaluation",
    "evaluation_download",
    "datasetversion-evaluations",
    "datasetversion-evaluation",
)


def _import_event_id(s: Scenario) -> int:
    """The project's import event (an import's report page), recorded once."""
    from annotation_server.audit import services as audit
    from annotation_server.audit.models import AuditEvent

    event = AuditEvent.objects.filter(project_id=s.project.pk, action="imaging.imported").first()
    if event is None:
        event = audit.record(
            "imaging.imported",
            actor=s.users["manager"],
            project_id=s.project.pk,
            data={"source": "cli", "files": 3, "imported": 3, "cases": [s.case.code]},
        )
    return event.pk


def _value(name: str, kwarg: str, s: Scenario) -> str:
    if kwarg == "slug":
        return s.project.slug
    if kwarg == "event_id":
        return str(_import_event_id(s))
    if kwarg == "pk":
        if name in EVALUATION_ROUTES:
            return str(s.evaluation.dataset_version_id)
        if name.startswith("pacs-"):
            return str(s.pacs.pk)
        return str(_DETAIL_OBJECTS[name.rsplit("-", 1)[0].split("-")[0]](s))
    return str(
        {
            "task_id": s.tasks["reader"].pk if name != "arbitrate" else s.arbitration.pk,
            "case_id": s.case.pk,
            "attempt_id": s.attempt.pk,
            "study": s.study_uid,
            "series": s.series_uid,
            "instance": s.sop_uid,
            "frames": "1",
            "user_id": s.users["reader"].pk,  # a member (the console's member pages)
            "token": "not-a-valid-invitation",
            "item_id": s.quarantine.pk,
            # the scenario's draft dataset version; the evaluation's frozen one
            "version": EVALUATED_VERSION if name in EVALUATION_ROUTES else "1.0.0",
            "job_id": s.job.pk,
            "evaluation_id": s.evaluation.pk,
            "proposal_id": s.proposal.pk,
            "version_id": s.proposal.model_version_id,  # a version that proposed on the case
            "fmt": "json",
        }[kwarg]
    )


_DJANGO_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def concrete_routes(s: Scenario) -> list[Route]:
    routes = []
    patterns = all_patterns()
    repeated = {n for n in (name for _, name in patterns) if [m for _, m in patterns].count(n) > 1}
    for pattern, name in patterns:
        if name in repeated and "projects/<slug" in pattern:
            name = f"{name}~project"
        path = _REGEX_GROUP.sub(lambda m, n=name: _value(n, m.group(1), s), pattern)
        path = _DJANGO_CONVERTER.sub(lambda m, n=name: _value(n, m.group(1), s), path)
        path = path.replace("^", "").replace("$", "").replace("\\.", ".")
        routes.append(Route(name=name, pattern=pattern, path="/" + path))
    return routes
