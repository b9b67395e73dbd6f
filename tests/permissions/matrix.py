"""The role x action x state matrix. test_matrix.py generates one test per cell.

Actors, seen from the read of `reader_own` (R1) on one case:
  reader_own    the read's author
  reader_other  another reader of the same case
  arbitrator    the project's arbitrator (not a reader of the case)
  manager       the project's dataset manager
  outsider      a user with no role in the project

States:
  reading       R1 in progress, the other reads in progress (blind phase 1)
  submitted     R1 submitted, the other reads still in progress
  arbitration   every phase-1 read submitted, the case sent to arbitration
  review        protocol with an unblinded review phase: phase-1 reads submitted,
                every reader holds an open phase-2 task

view_study: the other image series of the case's study (the series panel's
reference series, imaging/querysets.py): listed and their detail served.

allow = the request succeeds (and, for lists, the row is there);
deny  = the row is absent (404 or filtered out) or the write is refused (4xx).
"""

MATRIX = """
action           state        reader_own  reader_other  arbitrator  manager  outsider
view_project     reading      allow       allow         allow       allow    deny
view_case        reading      allow       allow         deny        allow    deny
view_task        reading      allow       deny          deny        allow    deny
view_findings    reading      allow       deny          deny        allow    deny
view_case_label  reading      allow       deny          deny        allow    deny
add_finding      reading      allow       deny          deny        deny     deny
edit_finding     reading      allow       deny          deny        deny     deny
delete_finding   reading      allow       deny          deny        deny     deny
submit           reading      allow       deny          deny        deny     deny
view_study       reading      allow       allow         deny        allow    deny
view_task        submitted    allow       deny          deny        allow    deny
view_findings    submitted    allow       deny          deny        allow    deny
view_case_label  submitted    allow       deny          deny        allow    deny
add_finding      submitted    deny        deny          deny        deny     deny
edit_finding     submitted    deny        deny          deny        deny     deny
delete_finding   submitted    deny        deny          deny        deny     deny
submit           submitted    deny        deny          deny        deny     deny
view_case        arbitration  allow       allow         allow       allow    deny
view_study       arbitration  allow       allow         allow       allow    deny
view_task        arbitration  allow       deny          allow       allow    deny
view_findings    arbitration  allow       deny          allow       allow    deny
view_case_label  arbitration  allow       deny          allow       allow    deny
edit_finding     arbitration  deny        deny          deny        deny     deny
view_task        review       allow       allow         deny        allow    deny
view_findings    review       allow       allow         deny        allow    deny
view_case_label  review       allow       allow         deny        allow    deny
edit_finding     review       deny        deny          deny        deny     deny
"""

ACTORS = ("reader_own", "reader_other", "arbitrator", "manager", "outsider")


def cells() -> list[tuple[str, str, str, bool]]:
    """(action, state, actor, allowed) for every cell of MATRIX."""
    lines = [line.split() for line in MATRIX.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert tuple(header[2:]) == ACTORS, header
    out = []
    for row in rows:
        action, state, *verdicts = row
        assert len(verdicts) == len(ACTORS), row
        for actor, verdict in zip(ACTORS, verdicts, strict=True):
            assert verdict in ("allow", "deny"), row
            out.append((action, state, actor, verdict == "allow"))
    return out
