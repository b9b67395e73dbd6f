"""The no-assistance arm's seeded split (projects.arms): a pure function."""

from __future__ import annotations

from annotation_server.projects import arms


def test_the_split_is_deterministic_and_independent_of_order():
    ids = list(range(1, 501))
    first = arms.split(ids, 0.3, seed=7)
    again = arms.split(list(reversed(ids)), 0.3, seed=7)
    assert sorted(first[1]) == sorted(again[1])
    assert arms.split(ids, 0.3, seed=7) == first


def test_the_fraction_is_honoured_and_the_seed_changes_the_draw():
    ids = range(1, 2001)
    _, without = arms.split(ids, 0.25, seed=1)
    assert 0.21 < len(without) / 2000 < 0.29
    _, other = arms.split(ids, 0.25, seed=2)
    assert set(without) != set(other)


def test_edges_and_monotonicity():
    ids = list(range(1, 301))
    assert arms.split(ids, 0.0, seed=3) == (ids, [])
    assert arms.split(ids, 1.0, seed=3) == ([], ids)
    small = set(arms.split(ids, 0.2, seed=3)[1])
    large = set(arms.split(ids, 0.5, seed=3)[1])
    assert small <= large  # raising the fraction only adds cases to the arm


def test_adding_cases_moves_no_other_case():
    before = set(arms.split(range(1, 101), 0.4, seed=9)[1])
    after = set(arms.split(range(1, 201), 0.4, seed=9)[1])
    assert before == {c for c in after if c <= 100}
