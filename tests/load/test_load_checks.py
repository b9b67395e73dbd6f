"""The load bench's checks catch what they are for (bench/loadseed.py `_check_key`):
a lost save, two saves acknowledged on one version, a 409 loser's content kept."""

from __future__ import annotations

from types import SimpleNamespace

from bench.loadseed import LOST, SILENT, _check_key
from bench.loadsim import Write


def _w(kind, content, base, status, version, seq, tab="A"):
    return Write("finding:x", kind, tab, 1, content, base, status, version, seq=seq)


def _row(version, content):
    return SimpleNamespace(version=version, content=content)


def _check(writes, row):
    return [category for category, _ in _check_key("finding:x", writes, row, lambda r: r.content)]


def test_the_last_acknowledged_save_in_the_database_passes():
    writes = [_w("create", {"a": 1}, None, 201, 1, 0), _w("update", {"a": 2}, 1, 200, 2, 1)]
    assert _check(writes, _row(2, {"a": 2})) == []


def test_an_older_version_or_other_content_is_a_lost_write():
    writes = [_w("create", {"a": 1}, None, 201, 1, 0), _w("update", {"a": 2}, 1, 200, 2, 1)]
    assert _check(writes, _row(1, {"a": 1})) == [LOST]
    assert _check(writes, _row(2, {"a": 1})) == [LOST]
    assert _check(writes, None) == [LOST]


def test_a_newer_version_needs_a_save_whose_answer_never_came():
    create = _w("create", {"a": 1}, None, 201, 1, 0)
    assert _check([create], _row(2, {"a": 9})) == [LOST]
    unanswered = _w("update", {"a": 9}, 1, None, None, 1)
    assert _check([create, unanswered], _row(2, {"a": 9})) == []


def test_two_saves_acknowledged_on_one_version_resolved_a_conflict_silently():
    writes = [
        _w("create", {"a": 1}, None, 201, 1, 0),
        _w("update", {"a": 2}, 1, 200, 2, 1),
        _w("update", {"b": 2}, 1, 200, 2, 2, tab="B"),
    ]
    assert SILENT in _check(writes, _row(2, {"b": 2}))


def test_a_refused_save_in_the_database_unless_sent_again_and_acknowledged():
    create = _w("create", {"a": 1}, None, 201, 1, 0)
    winner = _w("update", {"a": 2}, 1, 200, 2, 1)
    loser = _w("update", {"b": 2}, 1, 409, None, 2, tab="B")
    assert SILENT in _check([create, winner, loser], _row(2, {"b": 2}))
    resent = _w("update", {"b": 2}, 2, 200, 3, 3, tab="B")
    assert _check([create, winner, loser, resent], _row(3, {"b": 2})) == []


def test_a_deleted_finding_must_be_gone():
    writes = [_w("create", {"a": 1}, None, 201, 1, 0), _w("delete", None, 1, 204, None, 1)]
    assert _check(writes, None) == []
    assert _check(writes, _row(1, {"a": 1})) == [LOST]
