"""The multi-reader protocol end to end (issue 6): a lung project with three
readers per case; four readers take the qualification test and one fails; the
assignment job (in a real Celery worker) gives every case the three qualified
readers; the reads come in through the REST API with planted agreements and
disagreements; the settle job (same worker) matches and auto-accepts; the
arbitrator decides the disputes in the browser and signs; and the resulting
reference standard is checked finding by finding against what was planted.

The live server and the worker share the test's PostgreSQL database (the test
is transactional), so every job runs for real, nothing through a shortcut.
"""

from __future__ import annotations

import math

import pytest
from django.test import Client

import fixtures
from annotation_server.accounts.models import Role
from annotation_server.adjudication import services as adjudication
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.services import index_datasets
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case, Membership
from annotation_server.projects.services import grant_role
from annotation_server.qualification import services as q
from annotation_server.qualification.models import QualificationAttempt
from annotation_server.reading import assignment
from annotation_server.reading.anonymise import ReaderLabeller
from annotation_server.reading.models import Finding, ReadingTask
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse
from tests.adjudication.test_arbitration import decide, disputed_case
from tests.browser.helpers import login, open_from_arbitration_queue, wait_first_image
from tests.browser.test_arbitration_browser import wait_saved
from tests.worker import wait_for_job

SLICES = 16
MATRIX = 256
PIXEL, STEP = 0.7, 1.25  # fixtures.build_ct_datasets defaults
RADIUS_PX = 5.0
MATCH_RULE, MATCH_MM = "distance_or_inside", 5.0


class Volume:
    """A synthetic CT series indexed into the project, with its planted nodules."""

    def __init__(self, project, seed: int):
        datasets, truth = fixtures.build_ct_datasets(slices=SLICES, seed=seed, matrix=MATRIX)
        self.series = index_datasets(project, datasets).series[0]
        self.nodules = {n["id"]: n for n in truth["nodules"]}
        n = next(iter(self.nodules.values()))
        col, row, s = n["centre_voxel"]
        x, y, z = n["centre_mm"]
        self.origin = (x - col * PIXEL, y - row * PIXEL, z - s * STEP)

    def contour(self, col: float, row: float, slice_index: int) -> dict:
        """An octagon drawn on the slice above, at and below `slice_index`."""
        points = [
            [
                round(col + RADIUS_PX * math.cos(k * math.pi / 4), 2),
                round(row + RADIUS_PX * math.sin(k * math.pi / 4), 2),
            ]
            for k in range(8)
        ]
        slices = [slice_index - 1, slice_index, slice_index + 1]
        return {
            "kind": "contour",
            "shapes": [{"slice_index": s, "points": points} for s in slices],
            "centre_mm": [
                self.origin[0] + col * PIXEL,
                self.origin[1] + row * PIXEL,
                self.origin[2] + slice_index * STEP,
            ],
        }

    def on(self, nodule_id: str, dcol: float = 0.0, drow: float = 0.0) -> dict:
        """A reader's contour of a planted nodule, possibly a pixel or so off."""
        col, row, s = self.nodules[nodule_id]["centre_voxel"]
        return self.contour(col + dcol, row + drow, s)

    def centre(self, nodule_id: str) -> list[float]:
        return self.nodules[nodule_id]["centre_mm"]


def nodule(geometry: dict, nodule_type: str = "solid") -> dict:
    return {
        "finding_type": "nodule",
        "geometry": geometry,
        "attributes": factories.complete_nodule_attributes(
            nodule_type=nodule_type, long_axis_mm=7.0, malignancy=3
        ),
    }


def api_read(client, task_id: int, marks: list[dict], labels: dict) -> list[str]:
    """What the workstation does: start, save findings, save the case labels with
    the version it holds, submit with the task's version. Returns finding uids."""
    started = client.post(f"/api/v1/reading-tasks/{task_id}/start/")
    assert started.status_code == 200, started.content
    uids = []
    for mark in marks:
        made = client.post("/api/v1/findings/", {"task": task_id, **mark}, format="json")
        assert made.status_code == 201, made.content
        uids.append(made.json()["uid"])
    label = client.get(f"/api/v1/reading-tasks/{task_id}/case-label/").json()
    put = client.put(
        f"/api/v1/reading-tasks/{task_id}/case-label/",
        {"values": labels, "version": label["version"]},
        format="json",
    )
    assert put.status_code == 200, put.content
    version = client.get(f"/api/v1/reading-tasks/{task_id}/").json()["version"]
    submitted = client.post(
        f"/api/v1/reading-tasks/{task_id}/submit/", {"version": version}, format="json"
    )
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["state"] == ReadingTask.State.SUBMITTED
    return uids


def within(point, planted, mm: float) -> bool:
    return math.dist([float(v) for v in point], planted) <= mm


@pytest.mark.browser
@pytest.mark.celery
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_three_readers_to_a_signed_reference_standard(
    live_server,
    page,
    celery_worker,
    client_for,
    project,
    site,
    reader_a,
    reader_b,
    reader_c,
    arbitrator,
    manager,
    artifacts_dir,
):
    # ------------------------------------------------------------ 1. the project
    reader_d = factories.UserFactory(username="reader_d", profile__site=site)
    grant_role(project, reader_d, Role.READER)
    protocol = project.protocol
    protocol.readers_per_case = 3
    protocol.match_rule = MATCH_RULE
    protocol.match_threshold = MATCH_MM
    protocol.auto_accept_min_readers = 3
    protocol.auto_accept_same_type = True
    protocol.drop_below_readers = 1  # nothing is dropped: a lone mark goes to arbitration
    protocol.arbitration_mode = "single"
    protocol.review_phase = False
    protocol.full_clean()
    protocol.save()
    assert project.label_schema.key == "lung-nodule-ct"

    volumes = {"CT01": Volume(project, 3), "CT02": Volume(project, 5), "Q01": Volume(project, 7)}
    cases = {
        code: Case.objects.create(
            project=project,
            code=code,
            series=v.series,
            state=Case.State.QC,
            qc_status=Case.QcStatus.PASS,
        )
        for code, v in volumes.items()
    }
    ct1, ct2, qv = volumes["CT01"], volumes["CT02"], volumes["Q01"]
    # The planted lesions used below: A (solid) and B (part-solid) in CT01, one in CT02.
    assert ct1.nodules["N1"]["type"] == "solid" and ct1.nodules["N2"]["type"] == "part-solid"
    assert math.dist(ct1.centre("N1"), ct1.centre("N2")) > 50

    # ------------------------------------------------------------ 2. qualification
    test = q.create_test(project, name="Lung qualification", by=manager, min_sensitivity=0.8)
    q.add_case(test, cases["Q01"], by=manager)
    assert q.import_reference(cases["Q01"], [nodule(qv.on("N1"))], by=manager) == 1
    attempts = {}
    for reader, finds in ((reader_a, True), (reader_b, True), (reader_c, True), (reader_d, False)):
        api = client_for(reader)
        started = api.post(f"/api/v1/qualification-tests/{test.pk}/start/")
        assert started.status_code == 201, started.content
        [qtask] = started.json()["tasks"]
        marks = [nodule(qv.on("N1", dcol=1))] if finds else []
        api_read(api, qtask["id"], marks, {"nodules_present": finds, "image_quality": 3})
        attempts[reader.username] = api.get(
            f"/api/v1/qualification-attempts/{started.json()['id']}/"
        ).json()
    for name in ("reader_a", "reader_b", "reader_c"):
        assert attempts[name]["passed"] is True and attempts[name]["sensitivity"] == 1.0
    assert attempts["reader_d"]["passed"] is False and attempts["reader_d"]["sensitivity"] == 0.0
    failed = QualificationAttempt.objects.get(reader=reader_d)
    assert [m["case"] for m in failed.details["misses"]] == ["Q01"]
    qualified = set(
        Membership.objects.filter(project=project, role=Role.READER, qualified=True).values_list(
            "user__username", flat=True
        )
    )
    assert qualified == {"reader_a", "reader_b", "reader_c"}

    # ------------------------------------------------------------ 3. assignment job
    job = wait_for_job(assignment.enqueue_assignment(project, by=manager), celery_worker)
    assert sorted(job.result["filled_cases"]) == ["CT01", "CT02"]
    assert job.result["qualification_required"] and job.result["eligible_readers"] == 3
    reads = {}
    for code in ("CT01", "CT02"):
        case = cases[code]
        case.refresh_from_db()
        assert case.state == Case.State.READING
        tasks = ReadingTask.objects.filter(case=case, attempt__isnull=True)
        assert tasks.count() == 3 and set(tasks.values_list("phase", flat=True)) == {1}
        reads[code] = {t.reader.username: t for t in tasks.select_related("reader")}
        assert set(reads[code]) == {"reader_a", "reader_b", "reader_c"}  # never reader_d
    assert not ReadingTask.objects.filter(reader=reader_d, attempt__isnull=True).exists()
    assert not ReadingTask.objects.filter(case=cases["Q01"], attempt__isnull=True).exists()

    # ------------------------------------------------------------ 4. the reads
    far_off = ct1.contour(40, 60, 3)  # nowhere near a planted nodule
    planted = {  # CT01: A by all three alike; B by two, typed differently; a lone FP
        "reader_a": [nodule(ct1.on("N1")), nodule(ct1.on("N2"), "ground_glass")],
        "reader_b": [nodule(ct1.on("N1", dcol=1)), nodule(far_off)],
        "reader_c": [nodule(ct1.on("N1", drow=-1)), nodule(ct1.on("N2", 1, 1), "part_solid")],
    }
    quality = {"reader_a": 3, "reader_b": 2, "reader_c": 3}  # a case-level disagreement
    nudge = {"reader_a": 0.0, "reader_b": 0.5, "reader_c": -0.5}
    uids: dict[str, dict[str, list[str]]] = {"CT01": {}, "CT02": {}}
    for name in ("reader_a", "reader_b", "reader_c"):
        api = client_for(reads["CT01"][name].reader)
        labels = {"nodules_present": True, "image_quality": quality[name]}
        uids["CT01"][name] = api_read(api, reads["CT01"][name].pk, planted[name], labels)
        # CT02: everyone marks its N1 the same way and answers the same.
        ct2_mark = [nodule(ct2.on("N1", dcol=nudge[name]), "solid")]
        labels = {"nodules_present": True, "image_quality": 3}
        uids["CT02"][name] = api_read(api, reads["CT02"][name].pk, ct2_mark, labels)
    a_uids = {uids["CT01"][n][0] for n in ("reader_a", "reader_b", "reader_c")}
    b_uids = {uids["CT01"]["reader_a"][1], uids["CT01"]["reader_c"][1]}
    fp_uids = {uids["CT01"]["reader_b"][1]}
    ct2_uids = {uids["CT02"][n][0] for n in ("reader_a", "reader_b", "reader_c")}

    # ------------------------------------------------------------ 5. settle jobs
    settle_jobs = {
        code: Job.objects.get(kind="adjudication.settle", params={"case_id": cases[code].pk})
        for code in ("CT01", "CT02")
    }
    for code, job in settle_jobs.items():
        settle_jobs[code] = wait_for_job(job, celery_worker)
    assert settle_jobs["CT01"].result["outcome"] == "arbitration"
    assert settle_jobs["CT01"].result["label_disputes"] == 1
    assert settle_jobs["CT02"].result["outcome"] == "adjudicated"
    for code in ("CT01", "CT02"):
        cases[code].refresh_from_db()
    assert cases["CT01"].state == Case.State.ARBITRATION
    assert cases["CT02"].state == Case.State.ADJUDICATED

    def members(cluster) -> set[str]:
        return {str(u) for u in cluster.findings.values_list("uid", flat=True)}

    clusters = {frozenset(members(c)): c for c in Cluster.objects.filter(case=cases["CT01"]).all()}
    assert set(clusters) == {frozenset(a_uids), frozenset(b_uids), frozenset(fp_uids)}
    cl_a, cl_b, cl_fp = (clusters[frozenset(u)] for u in (a_uids, b_uids, fp_uids))
    for cl in (cl_a, cl_b, cl_fp):
        assert cl.match_rule == MATCH_RULE and cl.match_threshold == MATCH_MM
        assert cl.threshold_used <= MATCH_MM
    assert (cl_a.verdict, cl_a.readers) == (Cluster.Verdict.ACCEPT, 3)
    assert (cl_b.verdict, cl_b.readers) == (Cluster.Verdict.DISPUTE, 2)
    b_reasons = {r["code"] for r in cl_b.reasons}
    assert {"existence", "attribute"} <= b_reasons
    assert any(r.get("key") == "nodule_type" for r in cl_b.reasons)
    assert (cl_fp.verdict, cl_fp.readers) == (Cluster.Verdict.DISPUTE, 1)
    assert {r["code"] for r in cl_fp.reasons} == {"existence"}
    [cl_ct2] = Cluster.objects.filter(case=cases["CT02"])
    assert members(cl_ct2) == ct2_uids and cl_ct2.verdict == Cluster.Verdict.ACCEPT
    settlement = Settlement.objects.get(case=cases["CT01"])
    assert settlement.protocol["match_rule"] == MATCH_RULE
    assert [d["key"] for d in settlement.label_disputes] == ["image_quality"]
    task = ArbitrationTask.objects.get(case=cases["CT01"])
    assert task.arbitrator == arbitrator and task.role == ArbitrationTask.Role.SOLE
    assert sorted(task.items["clusters"]) == sorted([cl_b.pk, cl_fp.pk])
    assert task.items["labels"] == ["image_quality"]
    assert not ArbitrationTask.objects.filter(case=cases["CT02"]).exists()

    # ------------------------------------------------------------ 6. arbitration
    labeller = ReaderLabeller(arbitrator)
    r_a = labeller.label(reads["CT01"]["reader_a"])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server, "arbitrator")
    summary = open_from_arbitration_queue(page, live_server, task)
    assert "2 disputed clusters" in summary
    assert page.locator("[data-testid=cluster]").count() == 2
    assert page.locator("[data-testid=settled-cluster]").count() == 1
    # Nodule B: R(reader_a)'s contour, but the type the arbitrator sees: part-solid.
    page.click(f"[data-testid=cluster][data-cluster='{cl_b.pk}']")
    page.click(f"#arb-decision [data-testid=accept-{r_a}]")
    page.select_option("#arb-decision select[name=nodule_type]", "part_solid")
    page.select_option("#arb-decision [data-testid=reason-code]", "existence_confirmed")
    # The lone mark: not a nodule.
    page.click(f"[data-testid=cluster][data-cluster='{cl_fp.pk}']")
    page.click("#arb-decision [data-testid=action-reject]")
    page.select_option("#arb-decision [data-testid=reason-code]", "not_a_finding")
    # The case-level disagreement.
    label_item = page.locator("[data-testid=label-item][data-key=image_quality]")
    label_item.locator("button[data-value='3']").click()
    label_item.locator("[data-testid=reason-code]").select_option("label_confirmed")
    wait_saved(page)
    page.click("[data-testid=sign-open]")
    assert page.locator("[data-testid=sign-summary] [data-testid=summary-row]").count() == 3
    assert page.locator("[data-testid=sign-problems]").is_hidden()
    page.fill("[data-testid=sign-password]", factories.PASSWORD)
    with page.expect_navigation():
        page.click("[data-testid=sign-submit]")
    wait_first_image(page)
    assert page.locator("[data-testid=signed-note]").is_visible()
    page.screenshot(path=str(artifacts_dir / "end-to-end-signed.png"))
    assert errors == []

    # ------------------------------------------------------------ 7. the reference
    task.refresh_from_db()
    assert task.state == ArbitrationTask.State.SIGNED and task.signature_hash
    for code in ("CT01", "CT02"):
        cases[code].refresh_from_db()
        assert cases[code].state == Case.State.ADJUDICATED

    def current(case):
        return ReferenceFinding.objects.filter(case=case, is_current=True)

    def supporting(ref) -> set[str]:
        return {str(u) for u in ref.supporting_findings.values_list("uid", flat=True)}

    expected = [  # (case, cluster, planted centre, type, decision, support)
        (cases["CT01"], cl_a, ct1.centre("N1"), "solid", "auto_consensus", a_uids),
        (cases["CT01"], cl_b, ct1.centre("N2"), "part_solid", "arbitrated", b_uids),
        (cases["CT02"], cl_ct2, ct2.centre("N1"), "solid", "auto_consensus", ct2_uids),
    ]
    for case, cluster, centre, ftype, decision, support in expected:
        ref = current(case).get(ref_key=cluster.ref_key)
        where = f"{case.code} cluster {cluster.number}"
        assert ref.status == ReferenceFinding.Status.INCLUDED, where
        assert ref.finding_type == "nodule" and ref.attributes["nodule_type"] == ftype, where
        centre_mm = (ref.centre_x_mm, ref.centre_y_mm, ref.centre_z_mm)
        assert within(centre_mm, centre, 2.0), (where, centre_mm, centre)
        assert ref.decision == decision, where
        assert supporting(ref) == support, where
        assert (ref.match_rule, ref.match_threshold) == (MATCH_RULE, MATCH_MM), where
        assert ref.revision == 1 and ref.is_current and ref.supersedes is None, where
        if decision == "arbitrated":
            assert ref.decided_by == arbitrator and ref.arbitration_task == task, where
            assert ref.reason_code == "existence_confirmed", where
        else:
            assert ref.decided_by is None and ref.arbitration_task is None, where
            assert ref.reason_code == "", where
    b_ref = current(cases["CT01"]).get(ref_key=cl_b.ref_key)
    chosen = Finding.objects.get(uid=uids["CT01"]["reader_a"][1])
    assert b_ref.geometry["source_finding"] == str(chosen.uid)  # reader_a's contour...
    assert chosen.attributes["nodule_type"] == "ground_glass"  # ...with the arbitrator's type
    fp_ref = current(cases["CT01"]).get(ref_key=cl_fp.ref_key)
    assert fp_ref.status == ReferenceFinding.Status.REJECTED
    assert fp_ref.decision == "arbitrated" and fp_ref.reason_code == "not_a_finding"
    assert fp_ref.decided_by == arbitrator and supporting(fp_ref) == fp_uids
    assert fp_ref.revision == 1
    # Nothing else made it into the reference standard.
    included = ReferenceFinding.Status.INCLUDED
    assert current(cases["CT01"]).count() == 3
    assert set(
        current(cases["CT01"]).filter(status=included).values_list("ref_key", flat=True)
    ) == {
        cl_a.ref_key,
        cl_b.ref_key,
    }
    assert current(cases["CT02"]).count() == 1
    assert not ReferenceFinding.objects.filter(case=cases["CT01"], is_current=False).exists()
    # Case-level answers: arbitrated on CT01, agreed on CT02.
    labels_1 = ReferenceLabels.objects.get(case=cases["CT01"], is_current=True)
    assert labels_1.values == {"nodules_present": True, "image_quality": 3}
    assert labels_1.decision == "arbitrated" and labels_1.decided_by == arbitrator
    assert labels_1.provenance["image_quality"]["reason_code"] == "label_confirmed"
    assert labels_1.revision == 1
    labels_2 = ReferenceLabels.objects.get(case=cases["CT02"], is_current=True)
    assert labels_2.values == {"nodules_present": True, "image_quality": 3}
    assert labels_2.decision == "auto_consensus" and labels_2.decided_by is None
    # The signature is on record, and what it covers.
    [signed] = AuditEvent.objects.filter(action="arbitration.signed")
    assert signed.actor_id == arbitrator.pk and signed.data["sha256"] == task.signature_hash
    assert set(signed.data["decisions"]["clusters"]) == {str(cl_b.pk), str(cl_fp.pk)}
    assert not AuditEvent.objects.filter(action="arbitration.signature_refused").exists()
    written = AuditEvent.objects.get(action="adjudication.reference_written")
    assert {f["action"] for f in written.data["findings"]} == {"accept_reader", "reject"}


@pytest.mark.django_db
def test_the_arbitration_page_filters_through_visible_to_for_its_logged_in_user(
    grid_case, tasks, protocol, arbitrator, reader_a
):
    """The page's user (a session login: a lazy request.user) sees through
    visible_to the same clusters, reference findings and labels as the plain user
    object: the settled cluster before signing, the references and labels after."""
    from tests.adjudication.test_arbitration_pages import bootstrap

    for task in tasks.values():  # a nodule all three mark alike: auto-accepted
        add_finding(task, ellipse(200, 60, [12, 13]), nodule_type="solid")
    clusters = disputed_case(grid_case, tasks, quality_c=2)
    task = ArbitrationTask.objects.get(case=grid_case)
    settled = Cluster.objects.get(case=grid_case, verdict=Cluster.Verdict.ACCEPT)
    client = Client()
    assert client.login(username="arbitrator", password=factories.PASSWORD)
    boot = bootstrap(client.get(f"/arbitrate/{task.pk}/"))
    assert [c["id"] for c in boot["settled_clusters"]] == [settled.pk]
    visible = Cluster.objects.visible_to(arbitrator).filter(case=grid_case)
    assert {settled.pk} | {c["id"] for c in boot["task"]["clusters"]} == set(
        visible.values_list("pk", flat=True)
    )
    decisions = decide(clusters)
    decisions["labels"] = {"image_quality": {"value": 3, "reason_code": "label_confirmed"}}
    task = adjudication.save_decisions(task, arbitrator, decisions, expected_version=task.version)
    adjudication.sign(task, arbitrator, factories.PASSWORD, expected_version=task.version)
    boot = bootstrap(client.get(f"/arbitrate/{task.pk}/"))
    refs = ReferenceFinding.objects.visible_to(arbitrator).filter(
        case=grid_case, arbitration_task=task, is_current=True
    )
    assert refs.count() == 2
    assert {r["ref_key"] for r in boot["references"]} == {
        str(k) for k in refs.values_list("ref_key", flat=True)
    }
    assert {r["status"] for r in boot["references"]} == {"included", "rejected"}
    assert boot["reference_labels"]["values"]["image_quality"] == 3
    # Someone outside arbitration sees none of it through the same filters.
    assert not Cluster.objects.visible_to(reader_a).filter(case=grid_case).exists()
    assert not ReferenceLabels.objects.visible_to(reader_a).filter(case=grid_case).exists()
