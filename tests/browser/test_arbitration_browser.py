"""李主任 arbitrates a CT case in the browser: three reads overlaid, clusters with
their reasons, decisions saved as drafts, signed with his password; a second tab
with a stale version gets a conflict and loses nothing."""

from __future__ import annotations

import math

import pytest

import fixtures
from annotation_server.adjudication import services as adjudication
from annotation_server.adjudication.models import ArbitrationTask, Cluster, ReferenceFinding
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading import services as reading
from annotation_server.reading.models import ReadingTask
from tests import factories
from tests.browser import helpers
from tests.browser.helpers import (
    login,
    open_arbitration,
    open_from_arbitration_queue,
    wait_first_image,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SLICES = 12
ORIGIN = (-89.25, -89.25, -156.875)  # fixtures.build_ct_datasets(matrix=256) geometry
PIXEL, STEP = 0.7, 1.25


def contour(col: float, row: float, slices, radius: float) -> dict:
    """An octagon of `radius` pixels around (col, row) on each slice."""
    points = [
        [
            round(col + radius * math.cos(k * math.pi / 4), 2),
            round(row + radius * math.sin(k * math.pi / 4), 2),
        ]
        for k in range(8)
    ]
    z = sum(ORIGIN[2] + s * STEP for s in slices) / len(slices)
    return {
        "kind": "contour",
        "shapes": [{"slice_index": s, "points": points} for s in slices],
        "centre_mm": [ORIGIN[0] + col * PIXEL, ORIGIN[1] + row * PIXEL, z],
    }


def read(task, reader, marks, quality=3):
    for geometry, attrs in marks:
        reading.save_finding(
            task,
            reader,
            finding_type="nodule",
            geometry=geometry,
            attributes=factories.complete_nodule_attributes(**attrs),
        )
    reading.save_case_label(
        task, reader, {"nodules_present": True, "image_quality": quality}, expected_version=None
    )
    task.state = ReadingTask.State.SUBMITTED
    task.save(update_fields=["state"])


@pytest.fixture
def disputed(project, reader_a, reader_b, reader_c):
    """A real CT whose reads disagree: nodule A by R1 (solid) and R3 (part-solid),
    a 2.5 mm spot by R2 alone, nodule C by all three alike; image quality 3/2/3."""
    protocol = project.protocol
    protocol.auto_accept_min_readers = 3
    protocol.drop_below_readers = 1
    protocol.save()
    datasets, _ = fixtures.build_ct_datasets(slices=SLICES, seed=3, matrix=256)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code="CT0042", series=series, state=Case.State.READING, qc_status="pass"
    )
    a, b, c = (
        ReadingTask.objects.create(case=case, reader=r) for r in (reader_a, reader_b, reader_c)
    )
    nodule_a = contour(90, 110, [4, 5, 6], 5)
    nodule_c = contour(140, 60, [2], 4)
    read(a, reader_a, [(nodule_a, {"nodule_type": "solid"}), (nodule_c, {})])
    read(
        b,
        reader_b,
        [(contour(180, 160, [8], 1.8), {"long_axis_mm": 2.5}), (nodule_c, {})],
        quality=2,
    )
    read(
        c,
        reader_c,
        [(contour(91, 111, [4, 5, 6], 5), {"nodule_type": "part_solid"}), (nodule_c, {})],
    )
    adjudication.settle_case(case.pk)
    case.refresh_from_db()
    assert case.state == Case.State.ARBITRATION
    by_readers = {
        frozenset(f.task.reader.username for f in cl.findings.all()): cl
        for cl in Cluster.objects.filter(case=case).prefetch_related("findings__task__reader")
    }
    return {
        "case": case,
        "task": ArbitrationTask.objects.get(case=case),
        "A": by_readers[frozenset({"reader_a", "reader_c"})],
        "B": by_readers[frozenset({"reader_b"})],
        "C": by_readers[frozenset({"reader_a", "reader_b", "reader_c"})],
        "c_finding": c.findings.get(finding_type="nodule", geometry__shapes__0__slice_index=4),
    }


def wait_saved(page) -> None:
    """The arbitration's drafts are saved and its saver has nothing in flight."""
    helpers.wait_saved(page, helpers.ARBITRATION_SAVER)


def test_arbitrator_decides_and_signs_a_case_in_the_browser(
    live_server, page, disputed, arbitrator, artifacts_dir
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    task = disputed["task"]
    login(page, live_server, "arbitrator")
    summary = open_from_arbitration_queue(page, live_server, task)
    assert "2 disputed clusters" in summary
    page.wait_for_function(
        "document.querySelector('.ws-load').dataset.state === 'done'", timeout=30_000
    )

    # Three reads, one colour each; the disputed clusters with their reasons.
    readers = page.locator("[data-testid=readers] [data-reader]")
    assert readers.count() == 3
    assert [readers.nth(i).get_attribute("data-reader") for i in range(3)] == ["R1", "R2", "R3"]
    assert page.locator("[data-testid=cluster]").count() == 2
    assert page.locator("[data-testid=settled-cluster]").count() == 1
    a_item = page.locator(f"[data-testid=cluster][data-cluster='{disputed['A'].pk}']")
    reasons = a_item.locator("[data-reason]")
    assert {reasons.nth(i).get_attribute("data-reason") for i in range(reasons.count())} == {
        "existence",
        "attribute",
    }
    assert "2 of 3 readers" in a_item.inner_text()
    b_item = page.locator(f"[data-testid=cluster][data-cluster='{disputed['B'].pk}']")
    assert "1 of 3 readers" in b_item.inner_text()

    # Clicking a cluster jumps to its slice and highlights it.
    b_item.click()
    page.wait_for_function("window.__arb.slice === 8")
    a_item.click()
    page.wait_for_function("window.__arb.slice === 5")
    assert page.evaluate("window.__arb.selectedId") == disputed["A"].pk
    page.uncheck("[data-testid=toggle-R2]")
    assert page.evaluate("[...window.__arb.hiddenReaders]") == ["R2"]
    page.check("[data-testid=toggle-R2]")
    page.screenshot(path=str(artifacts_dir / "arbitration-overlay.png"))

    # Accept R3's contour, part-solid, malignancy corrected to 4, reason and text.
    page.click("#arb-decision [data-testid=accept-R3]")
    page.select_option("#arb-decision select[name=nodule_type]", "part_solid")
    page.click("#arb-decision [data-key=malignancy] button[data-value='4']")
    page.select_option("#arb-decision [data-testid=reason-code]", "existence_confirmed")
    page.fill("#arb-decision [data-testid=reason-text]", "seen on thin slices")
    # The other cluster: excluded, below 3 mm.
    b_item.click()
    page.click("#arb-decision [data-testid=action-exclude]")
    page.select_option("#arb-decision [data-testid=reason-code]", "below_size_limit")
    # The disputed case-level answer.
    label_item = page.locator("[data-testid=label-item][data-key=image_quality]")
    assert "R2: 2" in label_item.inner_text()
    label_item.locator("button[data-value='3']").click()
    label_item.locator("[data-testid=reason-code]").select_option("label_confirmed")
    wait_saved(page)
    saved = ArbitrationTask.objects.get(pk=task.pk)
    assert saved.version > task.version
    assert saved.decisions["clusters"][str(disputed["A"].pk)]["finding"] == str(
        disputed["c_finding"].uid
    )

    # Sign: the summary, a wrong password refused, then the right one.
    page.click("[data-testid=sign-open]")
    assert page.locator("[data-testid=sign-summary] [data-testid=summary-row]").count() == 3
    assert (
        "Accept R3's finding · Part-solid"
        in page.locator("[data-testid=sign-summary]").inner_text()
    )
    assert page.locator("[data-testid=sign-problems]").is_hidden()
    page.screenshot(path=str(artifacts_dir / "arbitration-sign.png"))
    page.fill("[data-testid=sign-password]", "not-my-password")
    page.click("[data-testid=sign-submit]")
    page.wait_for_function(
        "document.querySelector('[data-testid=sign-error]').textContent.includes('not correct')"
    )
    assert ArbitrationTask.objects.get(pk=task.pk).state != ArbitrationTask.State.SIGNED
    page.fill("[data-testid=sign-password]", factories.PASSWORD)
    with page.expect_navigation():
        page.click("[data-testid=sign-submit]")
    wait_first_image(page)

    # Read-only, with the resulting reference findings.
    assert page.locator("[data-testid=signed-note]").is_visible()
    assert page.locator("[data-testid=sign-open]").is_hidden()
    refs = page.locator("[data-testid=reference]")
    assert refs.count() == 2
    assert {refs.nth(i).get_attribute("data-status") for i in range(2)} == {"included", "excluded"}
    assert "R1, R3" in page.locator("[data-testid=reference][data-status=included]").inner_text()
    page.screenshot(path=str(artifacts_dir / "arbitration-signed.png"))

    a_ref = ReferenceFinding.objects.get(ref_key=disputed["A"].ref_key, is_current=True)
    assert a_ref.status == ReferenceFinding.Status.INCLUDED
    assert a_ref.geometry["source_finding"] == str(disputed["c_finding"].uid)
    assert a_ref.attributes["nodule_type"] == "part_solid" and a_ref.attributes["malignancy"] == 4
    assert a_ref.reason_code == "existence_confirmed" and a_ref.reason_text == "seen on thin slices"
    assert a_ref.decided_by == arbitrator and a_ref.supporting_findings.count() == 2
    b_ref = ReferenceFinding.objects.get(ref_key=disputed["B"].ref_key, is_current=True)
    assert (
        b_ref.status == ReferenceFinding.Status.EXCLUDED and b_ref.reason_code == "below_size_limit"
    )
    assert AuditEvent.objects.filter(action="arbitration.signature_refused").count() == 1
    assert AuditEvent.objects.filter(action="arbitration.signed").count() == 1
    disputed["case"].refresh_from_db()
    assert disputed["case"].state == Case.State.ADJUDICATED
    assert errors == []


def test_a_stale_tab_gets_a_conflict_and_nothing_is_lost(
    live_server, browser, disputed, arbitrator, artifacts_dir
):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    try:
        first, second = context.new_page(), context.new_page()
        for p in (first, second):
            p.set_default_timeout(15_000)
        login(first, live_server, "arbitrator")
        task = disputed["task"]
        open_arbitration(first, live_server, task)
        open_arbitration(second, live_server, task)
        # Tab 1 saves a decision on B; tab 2 still holds the old version.
        first.click(f"[data-testid=cluster][data-cluster='{disputed['B'].pk}']")
        first.click("#arb-decision [data-testid=action-exclude]")
        first.select_option("#arb-decision [data-testid=reason-code]", "below_size_limit")
        wait_saved(first)
        # Tab 2 decides A: the server refuses the stale version.
        second.click(f"[data-testid=cluster][data-cluster='{disputed['A'].pk}']")
        second.click("#arb-decision [data-testid=accept-R1]")
        second.wait_for_function(
            "document.querySelector('[data-testid=save-state]').dataset.state === 'conflict'"
        )
        banner = second.locator("[data-testid=conflict]")
        assert banner.is_visible() and "Nothing was overwritten" in banner.inner_text()
        second.screenshot(path=str(artifacts_dir / "arbitration-conflict.png"))
        server = ArbitrationTask.objects.get(pk=task.pk).decisions
        assert list(server["clusters"]) == [str(disputed["B"].pk)]
        kept = second.evaluate("window.__arb.saver.local.clusters")
        assert kept[str(disputed["A"].pk)]["action"] == "accept_reader"
        # Nothing lost: merge re-applies tab 2's decision onto tab 1's version.
        second.click("[data-testid=conflict-merge]")
        wait_saved(second)
        merged = ArbitrationTask.objects.get(pk=task.pk).decisions["clusters"]
        assert merged[str(disputed["B"].pk)]["action"] == "exclude"
        assert merged[str(disputed["A"].pk)]["action"] == "accept_reader"
        assert banner.is_hidden()
    finally:
        context.close()


def test_arbitrator_edits_a_finding_by_drawing_it(live_server, page, disputed, arbitrator):
    login(page, live_server, "arbitrator")
    task = disputed["task"]
    open_arbitration(page, live_server, task)
    page.click(f"[data-testid=cluster][data-cluster='{disputed['B'].pk}']")
    page.click("#arb-decision [data-testid=action-edit]")
    assert page.locator("[data-testid=edit-hint]").is_visible()
    # Redraw the outline on slice 9 with the contour tool.
    page.keyboard.press("ArrowDown")
    page.wait_for_function("window.__arb.slice === 9")
    page.locator("[data-testid=viewer]").hover()
    page.keyboard.press("f")
    box = page.locator("[data-testid=viewer]").bounding_box()

    def at(col, row):
        x, y = page.evaluate(f"window.__arb.viewport.toScreen([{col}, {row}])")
        return box["x"] + x, box["y"] + y

    outline = [(170, 150), (190, 150), (192, 168), (172, 170)]
    page.mouse.move(*at(*outline[0]))
    page.mouse.down()
    for col, row in outline[1:] + outline[:1]:
        page.mouse.move(*at(col, row), steps=4)
    page.mouse.up()
    page.click("#arb-decision [data-key=malignancy] button[data-value='2']")
    page.select_option("#arb-decision [data-testid=reason-code]", "geometry_corrected")
    wait_saved(page)
    d = ArbitrationTask.objects.get(pk=task.pk).decisions["clusters"][str(disputed["B"].pk)]
    assert d["action"] == "edit"
    assert sorted(s["slice_index"] for s in d["geometry"]["shapes"]) == [8, 9]
    drawn = next(s for s in d["geometry"]["shapes"] if s["slice_index"] == 9)
    assert all(165 <= p[0] <= 197 and 145 <= p[1] <= 175 for p in drawn["points"])
    assert d["attributes"]["malignancy"] == 2 and len(d["geometry"]["centre_mm"]) == 3


def test_arbitrator_adds_a_finding_no_reader_marked_and_signs_it(
    live_server, page, disputed, arbitrator, artifacts_dir
):
    """Issue 12: a finding no reader marked is drawn, typed and described from the
    schema, needs a reason, shows in the list before signing and is signed with the
    rest. The project merges contours by STAPLE: the page offers that first."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    protocol = disputed["case"].project.protocol
    protocol.consensus_method = "staple"
    protocol.save()
    task = disputed["task"]
    login(page, live_server, "arbitrator")
    open_arbitration(page, live_server, task)

    # Cluster A merged by the protocol's rule (STAPLE: first, and said to be the rule).
    page.click(f"[data-testid=cluster][data-cluster='{disputed['A'].pk}']")
    merged = page.locator("#arb-decision [data-testid^=action-accept_merged]")
    assert merged.first.get_attribute("data-testid") == "action-accept_merged-staple"
    assert "the protocol's rule" in merged.first.inner_text()
    merged.first.click()
    assert "STAPLE" in page.locator("[data-testid=merged-hint]").inner_text()
    page.select_option("#arb-decision [data-testid=reason-code]", "merged_delineation")
    # Cluster B excluded; the disputed case-level answer given.
    page.click(f"[data-testid=cluster][data-cluster='{disputed['B'].pk}']")
    page.click("#arb-decision [data-testid=action-exclude]")
    page.select_option("#arb-decision [data-testid=reason-code]", "below_size_limit")
    label_item = page.locator("[data-testid=label-item][data-key=image_quality]")
    label_item.locator("button[data-value='3']").click()
    label_item.locator("[data-testid=reason-code]").select_option("label_confirmed")

    # A ground-glass nodule no reader marked, drawn on slice 10.
    page.click("[data-testid=add-finding]")
    assert page.locator("[data-testid=added-findings] [data-testid=added-finding]").count() == 1
    wait_saved(page)  # saved as a draft at once, before it is drawn
    assert page.locator("[data-testid=added-hint]").is_visible()
    assert page.locator("[data-testid=added-type] option").count() == 1  # the schema's types
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("window.__arb.slice === 10")
    page.locator("[data-testid=viewer]").hover()
    page.keyboard.press("f")
    box = page.locator("[data-testid=viewer]").bounding_box()

    def at(col, row):
        x, y = page.evaluate(f"window.__arb.viewport.toScreen([{col}, {row}])")
        return box["x"] + x, box["y"] + y

    outline = [(50, 190), (66, 188), (70, 204), (52, 208)]
    page.mouse.move(*at(*outline[0]))
    page.mouse.down()
    for col, row in outline[1:] + outline[:1]:
        page.mouse.move(*at(col, row), steps=4)
    page.mouse.up()
    assert "1 slice" in page.locator("[data-testid=added-drawn]").inner_text()
    page.select_option("#arb-decision select[name=nodule_type]", "ground_glass")
    page.fill("#arb-decision [data-key=long_axis_mm] input", "12")
    page.click("#arb-decision [data-key=malignancy] button[data-value='3']")
    wait_saved(page)

    # Without a reason it cannot be signed.
    page.click("[data-testid=sign-open]")
    problems = page.locator("[data-testid=sign-problems]")
    assert problems.is_visible() and "Added finding 1: pick a reason" in problems.inner_text()
    assert page.locator("[data-testid=sign-submit]").is_disabled()
    page.click("#arb-sign-cancel")
    page.select_option("#arb-decision [data-testid=reason-code]", "missed_by_readers")
    page.fill("#arb-decision [data-testid=reason-text]", "GGO behind the heart, missed by all")
    wait_saved(page)
    saved = ArbitrationTask.objects.get(pk=task.pk).decisions["added"]
    assert [a["reason_code"] for a in saved] == ["missed_by_readers"]
    assert [s["slice_index"] for s in saved[0]["geometry"]["shapes"]] == [10]

    # Listed before signing, with its reason, then signed with the rest.
    page.click("[data-testid=sign-open]")
    row = page.locator(f"[data-testid=summary-row][data-added='{saved[0]['key']}']")
    assert "Added: Nodule · Ground-glass" in row.inner_text()
    assert "missed by all" in row.inner_text()
    assert page.locator("[data-testid=sign-problems]").is_hidden()
    page.screenshot(path=str(artifacts_dir / "arbitration-added-sign.png"))
    page.fill("[data-testid=sign-password]", factories.PASSWORD)
    with page.expect_navigation():
        page.click("[data-testid=sign-submit]")
    wait_first_image(page)
    shown = page.locator("[data-testid=reference][data-added='1']")
    assert shown.count() == 1 and "missed by all" in shown.inner_text()
    page.screenshot(path=str(artifacts_dir / "arbitration-added-signed.png"))

    ref = ReferenceFinding.objects.get(geometry__added_by_arbitrator=True, is_current=True)
    assert str(ref.ref_key) == saved[0]["key"]
    assert ref.status == ReferenceFinding.Status.INCLUDED
    assert ref.decision == ReferenceFinding.Decision.ARBITRATED
    assert ref.reason_code == "missed_by_readers"
    assert ref.reason_text == "GGO behind the heart, missed by all"
    assert ref.attributes["nodule_type"] == "ground_glass" and ref.attributes["long_axis_mm"] == 12
    assert ref.supporting_findings.count() == 0 and ref.decided_by == arbitrator
    assert [s["slice_index"] for s in ref.geometry["shapes"]] == [10]
    a_ref = ReferenceFinding.objects.get(ref_key=disputed["A"].ref_key, is_current=True)
    assert a_ref.geometry["consensus"]["method"] == "staple"
    disputed["case"].refresh_from_db()
    assert disputed["case"].state == Case.State.ADJUDICATED
    assert errors == []


def test_the_tiebreaker_takes_over_a_finding_a_blind_arbitrator_added(
    live_server, page, disputed, site
):
    """With two blind arbitrators an addition is a proposal: the tie-breaker sees it
    as blind arbitrator A's, takes it over and signs it into the reference."""
    import uuid

    from annotation_server.accounts.models import Role
    from annotation_server.adjudication.services.settle import open_arbitration as open_tasks
    from annotation_server.projects.services import grant_role
    from tests.adjudication.test_console_stuck import sign

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    case = disputed["case"]
    for name in ("arbitrator_b", "arbitrator_c"):
        person = factories.UserFactory(username=name, profile__site=site)
        grant_role(case.project, person, Role.ARBITRATOR)
    case.project.protocol.arbitration_mode = "two_blind_tiebreak"
    case.project.protocol.save()
    sole = disputed["task"]
    items = sole.items
    sole.delete()
    first, second = open_tasks(case, round=1, items=items)
    decided = {
        "clusters": {
            str(disputed["A"].pk): {"action": "reject", "reason_code": "not_a_finding"},
            str(disputed["B"].pk): {"action": "exclude", "reason_code": "below_size_limit"},
        },
        "labels": {"image_quality": {"value": 3, "reason_code": "label_confirmed"}},
    }
    proposal = {
        "key": str(uuid.uuid4()),
        "finding_type": "nodule",
        "geometry": contour(60, 200, [10], 6),
        "attributes": factories.complete_nodule_attributes(nodule_type="ground_glass"),
        "reason_code": "missed_by_readers",
        "reason_text": "seen by the first arbitrator",
    }
    sign(first, {**decided, "added": [proposal]})
    sign(second, decided)
    tiebreak = ArbitrationTask.objects.get(case=case, role=ArbitrationTask.Role.TIEBREAK)
    assert tiebreak.items == {"clusters": [], "labels": [], "added": True}

    login(page, live_server, tiebreak.arbitrator.username)
    open_arbitration(page, live_server, tiebreak)
    offered = page.locator("[data-testid=added-proposal]")
    assert offered.count() == 1 and "blind arbitrator A" in offered.inner_text()
    assert "Ground-glass" in offered.inner_text()
    offered.locator("[data-testid=take-proposal]").click()
    assert page.locator("[data-testid=added-finding]").count() == 1
    assert page.locator("#arb-decision [data-testid=reason-code]").input_value() == (
        "missed_by_readers"
    )
    page.wait_for_function("window.__arb.slice === 10")  # taken over: its slice shown
    wait_saved(page)
    page.click("[data-testid=sign-open]")
    assert page.locator("[data-testid=sign-problems]").is_hidden()
    page.fill("[data-testid=sign-password]", factories.PASSWORD)
    with page.expect_navigation():
        page.click("[data-testid=sign-submit]")
    wait_first_image(page)
    assert page.locator("[data-testid=reference][data-added='1']").count() == 1
    ref = ReferenceFinding.objects.get(geometry__added_by_arbitrator=True, is_current=True)
    assert str(ref.ref_key) == proposal["key"] and ref.arbitration_task == tiebreak
    case.refresh_from_db()
    assert case.state == Case.State.ADJUDICATED
    assert errors == []


# -- the multiplanar views (issue 17) ----------------------------------------------

READER_COLOURS = {"R1": "#ff5252", "R2": "#40c4ff", "R3": "#69f0ae"}  # clusters.js
PIXEL_AT = """([selector, x, y]) => {
  const canvas = document.querySelector(selector);
  const d = window.devicePixelRatio || 1;
  const p = canvas.getContext('2d').getImageData(Math.floor(x * d), Math.floor(y * d), 1, 1).data;
  return [p[0], p[1], p[2]];
}"""


def settle(page) -> None:
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def drawn_on(page, role: str) -> dict:
    """What the plane view drew in its last paint, by reader (or mark) name."""
    out: dict = {}
    for d in page.evaluate(f"window.__arb.mpr.panes.{role}.drawn"):
        out.setdefault(d["name"], []).append(d)
    return out


def extent(marks) -> tuple:
    xs = [p[0] for m in marks for p in m["points"]]
    ys = [p[1] for m in marks for p in m["points"]]
    return min(xs), max(xs), min(ys), max(ys)


def colour_hits(page, role: str, colour: str, image_points, tolerance: int = 60) -> int:
    want = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    screen = page.evaluate(
        f"{image_points}.map((p) => window.__arb.mpr.panes.{role}.viewport.toScreen(p))"
    )
    hits = 0
    for x, y in screen:
        for dx in (-1, 0, 1):
            got = page.evaluate(PIXEL_AT, [f"[data-testid=viewer-{role}]", x + dx, y])
            if max(abs(a - b) for a, b in zip(got, want, strict=True)) <= tolerance:
                hits += 1
                break
    return hits


def open_loaded(page, live_server, task) -> None:
    login(page, live_server, "arbitrator")
    open_arbitration(page, live_server, task)
    page.wait_for_function(
        "document.querySelector('.ws-load').dataset.state === 'done'", timeout=30_000
    )


def test_every_read_shows_in_every_plane_of_the_arbitration_view(
    live_server, page, disputed, arbitrator, artifacts_dir
):
    """Issue 17: the arbitrator has the workstation's planes, layouts, slab and
    crosshair; every reader's marks are drawn (colour and dash of that reader) in
    every view they cross, on the rows of their slices, and the reader toggles hide
    them there too."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_loaded(page, live_server, disputed["task"])
    assert page.locator("[data-testid=mpr-bar]").is_visible()
    assert page.locator("[data-testid=tool-crosshair]").is_visible()
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("o")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '1x3'"
    )
    settle(page)
    for role in ("coronal", "sagittal"):
        assert page.locator(f"[data-testid=viewer-{role}]").is_visible()
    height = page.evaluate("window.__arb.mpr.panes.coronal.plane.height")
    assert height == SLICES

    # Cluster B (R2's 2.5 mm spot on slice 9): the planes cut through it.
    page.click(f"[data-testid=cluster][data-cluster='{disputed['B'].pk}']")
    page.wait_for_function("Math.abs(window.__arb.mpr.panes.coronal.index - 160) <= 1")
    settle(page)
    for role, centre in (("coronal", 180), ("sagittal", 160)):
        marks = drawn_on(page, role)
        assert set(marks) == {"R2"}, (role, set(marks))
        x0, x1, y0, y1 = extent(marks["R2"])
        # on slice 8 only (the head up: rows height - 9 .. height - 8), within its outline
        assert (y0, y1) == (height - 9, height - 8), role
        assert centre - 1.81 <= x0 < x1 <= centre + 1.81, role

    # Cluster A (R1 and R3 on slices 4-6): both readers, on those rows, in both planes.
    page.click(f"[data-testid=cluster][data-cluster='{disputed['A'].pk}']")
    page.wait_for_function("Math.abs(window.__arb.mpr.panes.coronal.index - 110) <= 1")
    settle(page)
    for role in ("coronal", "sagittal"):
        marks = drawn_on(page, role)
        assert {"R1", "R3"} <= set(marks) and "R2" not in marks, (role, set(marks))
        for reader in ("R1", "R3"):
            assert extent(marks[reader])[2:] == (height - 7, height - 4), (role, reader)

    # On the canvas: R1's left edge in its colour in the coronal view, alone in it.
    page.click("[data-single=coronal]")
    page.wait_for_function(
        "!document.querySelector('[data-testid=viewer-coronal]').closest('.ws-pane').hidden"
    )
    settle(page)
    page.screenshot(path=str(artifacts_dir / "arbitration-coronal.png"))
    left = extent(drawn_on(page, "coronal")["R1"])[0]
    edge = [[left, height - 7 + 0.25 * i] for i in range(1, 12)]
    assert colour_hits(page, "coronal", READER_COLOURS["R1"], edge) >= 3
    page.uncheck("[data-testid=toggle-R1]")
    settle(page)
    assert "R1" not in drawn_on(page, "coronal") and "R3" in drawn_on(page, "coronal")
    assert colour_hits(page, "coronal", READER_COLOURS["R1"], edge) == 0
    page.check("[data-testid=toggle-R1]")

    # The thick slab and the shortcuts work here as on the workstation.
    page.locator("[data-testid=viewer-coronal]").focus()
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('[data-testid=mpr-bar]').dataset.slab === 'mip'")
    assert page.evaluate("window.__arb.mpr.panes.coronal.currentFrame().range[1]") > page.evaluate(
        "window.__arb.mpr.panes.coronal.currentFrame().range[0]"
    )
    assert errors == []


def test_arbitrator_changes_the_edited_extent_from_the_coronal_view(
    live_server, page, disputed, arbitrator
):
    """Issue 17: the "Edit" decision's outline is reshaped from the coronal view by its
    frame: the top edge dragged two slices up stores the outline on two more slices,
    copies of the top one; the other slices stay as they were."""
    task = disputed["task"]
    open_loaded(page, live_server, task)
    page.click(f"[data-testid=cluster][data-cluster='{disputed['A'].pk}']")
    page.click("#arb-decision [data-testid=action-edit]")
    before = page.evaluate(
        f"window.__arb.saver.get('clusters', {disputed['A'].pk}).geometry.shapes"
    )
    assert [s["slice_index"] for s in before] == [4, 5, 6]
    page.click("[data-single=coronal]")
    page.wait_for_function(
        "!document.querySelector('[data-testid=viewer-coronal]').closest('.ws-pane').hidden"
    )
    settle(page)
    page.keyboard.press("v")
    frame = page.evaluate("window.__arb.mpr.panes.coronal.editFrame().points")
    (x0, y0), (x1, y1) = frame
    assert (y0, y1) == (SLICES - 7, SLICES - 4)
    box = page.locator("[data-testid=viewer-coronal]").bounding_box()

    def at(x, y):
        sx, sy = page.evaluate(f"window.__arb.mpr.panes.coronal.viewport.toScreen([{x}, {y}])")
        return box["x"] + sx, box["y"] + sy

    page.mouse.move(*at((x0 + x1) / 2, y0))
    page.mouse.down()
    page.mouse.move(*at((x0 + x1) / 2, y0 - 2.1), steps=6)
    page.mouse.up()
    wait_saved(page)
    d = ArbitrationTask.objects.get(pk=task.pk).decisions["clusters"][str(disputed["A"].pk)]
    assert d["action"] == "edit"
    shapes = {s["slice_index"]: s["points"] for s in d["geometry"]["shapes"]}
    assert sorted(shapes) == [4, 5, 6, 7, 8]
    by_slice = {s["slice_index"]: s["points"] for s in before}
    for k in (4, 5, 6):
        assert shapes[k] == by_slice[k]
    assert shapes[7] == by_slice[6] and shapes[8] == by_slice[6]
    assert len(d["geometry"]["centre_mm"]) == 3

    # A contour drawn on the coronal view across slices 9 and 10 joins the outline
    # there: one outline per slice, one row thick, the drawing's columns.
    row = page.evaluate("window.__arb.mpr.panes.coronal.index")
    page.keyboard.press("f")
    outline = [(60, SLICES - 8.8), (70, SLICES - 8.8), (70, SLICES - 10.7), (60, SLICES - 10.7)]
    page.mouse.move(*at(*outline[0]))
    page.mouse.down()
    for x, y in outline[1:] + outline[:1]:
        page.mouse.move(*at(x, y), steps=4)
    page.mouse.up()
    wait_saved(page)
    d = ArbitrationTask.objects.get(pk=task.pk).decisions["clusters"][str(disputed["A"].pk)]
    shapes = {s["slice_index"]: s["points"] for s in d["geometry"]["shapes"]}
    assert sorted(shapes) == [4, 5, 6, 7, 8, 9, 10]
    for k in (9, 10):
        cols = [p[0] for p in shapes[k]]
        assert {p[1] for p in shapes[k]} == {row, row + 1}
        assert min(cols) == pytest.approx(60, abs=0.6) and max(cols) == pytest.approx(70, abs=0.6)


def help_rows(page) -> dict:
    """The `?` overlay's rows: key combo -> its text."""
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#ws-help-body dt')]"
        ".map((dt) => [dt.dataset.combo, dt.nextElementSibling.textContent]))"
    )


def test_the_arbitration_view_lists_its_own_shortcuts_on_question_mark(
    live_server, page, disputed, arbitrator
):
    """`?` opens the same overlay as on the workstation, listing exactly the keys the
    arbitration view has, in its own words and the page's language; Esc, the `?`
    button and the close button show and hide it."""
    login(page, live_server, "arbitrator", "zh-hans")
    open_arbitration(page, live_server, disputed["task"])
    overlay = page.locator("[data-testid=help]")
    assert overlay.is_hidden()
    page.keyboard.press("?")
    overlay.wait_for(state="visible")
    # In Chinese, the overlay is in the page's language.
    assert page.inner_text("#ws-help-body h2") == "键盘快捷键"
    rows = help_rows(page)
    keys = page.evaluate("Object.fromEntries(window.__arb.pageKeys)")
    # Every listed key does something on this page, and every key with a text is listed.
    assert set(rows) <= set(keys)
    assert set(keys) - set(rows) <= {"ctrl+y"}  # redo's second key has no row of its own
    assert {"]", "[", "ctrl+s", "escape", "?", "s", "o", "k", "1", "w", "f"} <= set(rows)
    # The workstation's own keys are not offered: no box or polygon tool, no submit.
    assert not {"b", "g", "l", "a", "t", "c", "ctrl+enter", "n", "ctrl+z", "m"} & set(rows)
    page.keyboard.press("Escape")
    overlay.wait_for(state="hidden")

    helpers.switch_language(page, "en")
    helpers.wait_first_image(page)
    page.click("#ws-help-open")
    overlay.wait_for(state="visible")
    rows = help_rows(page)
    assert rows["]"] == "Next disputed cluster (jumps to its slice)"
    assert rows["ctrl+s"] == "Save the decisions now"
    assert rows["w"] == "Window / level (drag)"
    page.click("#ws-help-close")
    overlay.wait_for(state="hidden")
    # `?` again while it is shown hides it; the keys still act on the view.
    page.keyboard.press("?")
    overlay.wait_for(state="visible")
    page.keyboard.press("?")
    overlay.wait_for(state="hidden")
