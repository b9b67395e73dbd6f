"""A reader meets model proposals in the workstation: filters them by confidence,
accepts one, edits one and rejects one; the server records each decision and
each finding keeps its origin."""

from __future__ import annotations

import pytest

from annotation_server.projects.models import ReadingProtocol
from annotation_server.reading.models import (
    AssistModelVersion,
    CaseProbability,
    Finding,
    Proposal,
    ProposalDisposition,
)
from tests import factories
from tests.browser.helpers import (
    image_to_page,
    login,
    make_ct_case,
    open_read,
    seed_for,
    wait_saved,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SQUARES = {  # score -> the proposal's outline on slice 6 (image columns, rows)
    0.91: [[60, 60], [90, 60], [90, 90], [60, 90]],
    0.82: [[120, 120], [150, 120], [150, 150], [120, 150]],
    0.64: [[180, 60], [210, 60], [210, 90], [180, 90]],
    0.35: [[60, 180], [80, 180], [80, 200], [60, 200]],
}


@pytest.fixture
def assisted_read(request, project, reader_a, reader_b):
    ReadingProtocol.objects.filter(project=project).update(
        prelabel_visibility=ReadingProtocol.PrelabelVisibility.SHOWN,
        prelabel_min_confidence=0.3,
    )
    ct = make_ct_case(project, reader_a, reader_b, seed=seed_for(request))
    model = AssistModelVersion.objects.create(
        name="lung-nodule",
        version="1.0.0",
        task="detection",
        card={"name": "lung-nodule"},
        weights_sha256="ab" * 32,
        source=AssistModelVersion.Source.BUILTIN,
    )
    CaseProbability.objects.create(
        case=ct["case"],
        series=ct["case"].series,
        model_version=model,
        probabilities={"nodule": 0.93, "under_exposed": 0.02},
    )
    proposals = {}
    for score, points in SQUARES.items():
        proposals[score] = Proposal.objects.create(
            case=ct["case"],
            series=ct["case"].series,
            model_version=model,
            finding_type="nodule",
            geometry={"kind": "contour", "shapes": [{"slice_index": 5, "points": points}]},
            attributes=factories.complete_nodule_attributes(),
            score=score,
            threshold=0.3,
        )
    return ct["a"], proposals


def _item(page, proposal):
    return page.locator(f"[data-testid=proposal][data-proposal='{proposal.pk}']")


def test_reader_accepts_edits_and_rejects_proposals(
    live_server, page, assisted_read, artifacts_dir
):
    task, proposals = assisted_read
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)

    panel = page.locator("[data-testid=proposals]")
    panel.wait_for()
    assert page.locator("[data-testid=proposal]").count() == 4
    estimates = page.locator("[data-testid=case-estimates]").inner_text()
    assert "Nodule 93%" in estimates and "Under-exposed 2%" in estimates
    assert "4 of 4 proposals shown" in page.locator("[data-testid=proposal-count]").inner_text()
    # The reader raises the confidence shown: the 35% proposal leaves the list.
    page.locator("[data-testid=proposal-min]").fill("0.5")
    assert page.locator("[data-testid=proposal]").count() == 3
    assert "3 of 4 proposals shown" in page.locator("[data-testid=proposal-count]").inner_text()
    assert "91%" in _item(page, proposals[0.91]).inner_text()
    assert "lung-nodule 1.0.0" in _item(page, proposals[0.91]).inner_text()
    page.screenshot(path=str(artifacts_dir / "workstation-proposals-shown-en.png"))

    # Accept the first as it is: it becomes the reader's finding, marked as a model's.
    _item(page, proposals[0.91]).locator("[data-testid=proposal-accept]").click()
    page.locator("[data-testid=finding]").first.wait_for()
    assert page.locator("[data-testid=finding] .ws-badge").count() == 1
    assert page.evaluate("window.__ws.slice") == 5

    # Edit the second: accepted, selected, then one corner dragged outwards.
    _item(page, proposals[0.82]).locator("[data-testid=proposal-edit]").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=finding]').length === 2")
    x0, y0 = image_to_page(page, 150, 150)
    x1, y1 = image_to_page(page, 175, 172)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up()
    wait_saved(page)

    # Reject the third.
    _item(page, proposals[0.64]).locator("[data-testid=proposal-reject]").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=proposal]').length === 0")
    assert "0 of 1 proposal shown" in page.locator("[data-testid=proposal-count]").inner_text()
    page.screenshot(path=str(artifacts_dir / "workstation-proposals-en.png"))

    decided = {d.proposal_id: d for d in ProposalDisposition.objects.filter(task=task)}
    assert set(decided) == {proposals[s].pk for s in (0.91, 0.82, 0.64)}
    accepted, edited, rejected = (decided[proposals[s].pk] for s in (0.91, 0.82, 0.64))
    assert accepted.action == ProposalDisposition.Action.ACCEPTED and accepted.dice == 1.0
    assert edited.action == ProposalDisposition.Action.EDITED
    assert edited.dice is not None and 0.3 < edited.dice < 0.95
    assert edited.hd95_mm is not None and edited.hd95_mm > 0
    assert rejected.action == ProposalDisposition.Action.REJECTED and rejected.finding is None

    findings = {f.proposal_id: f for f in Finding.objects.filter(task=task)}
    assert set(findings) == {proposals[0.91].pk, proposals[0.82].pk}
    assert findings[proposals[0.91].pk].source == Finding.Source.MODEL_ACCEPTED
    assert findings[proposals[0.91].pk].geometry["shapes"] == proposals[0.91].geometry["shapes"]
    assert findings[proposals[0.82].pk].source == Finding.Source.MODEL_EDITED
    assert all(
        f.model_name == "lung-nodule" and f.model_version == "1.0.0" for f in findings.values()
    )

    # Reloaded, the decided proposals stay decided; the low one is still there to decide.
    page.reload()
    page.locator("[data-testid=proposals]").wait_for()
    assert page.locator("[data-testid=finding]").count() == 2
    page.locator("[data-testid=proposal-min]").fill("0.3")
    assert page.locator("[data-testid=proposal]").count() == 1


def test_deleting_an_accepted_proposal_rejects_it(live_server, page, assisted_read):
    task, proposals = assisted_read
    login(page, live_server, "reader_a", "zh-hans")
    open_read(page, live_server, task)
    _item(page, proposals[0.91]).locator("[data-testid=proposal-accept]").click()
    page.locator("[data-testid=finding]").first.wait_for()
    assert "采纳" in _item(page, proposals[0.82]).inner_text()
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("Delete")
    page.wait_for_function("document.querySelectorAll('[data-testid=finding]').length === 0")
    wait_saved(page)
    disposition = ProposalDisposition.objects.get(task=task, proposal=proposals[0.91])
    assert disposition.action == ProposalDisposition.Action.REJECTED
    assert not Finding.objects.filter(task=task).exists()
