"""The split rules (datasets/splits.py), as plain functions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from annotation_server.datasets import splits
from annotation_server.datasets.changelog import CaseState, compute


def _items(n_patients=200, seed=0):
    rng = random.Random(seed)
    items = []
    for p in range(n_patients):
        site, vendor = rng.choice("ABC"), rng.choice(["GE", "SIEMENS"])
        label = "positive" if rng.random() < 0.4 else "negative"
        for k in range(rng.choice([1, 1, 2, 3])):
            items.append(splits.Item(f"c{p}-{k}", f"p{p}", site, vendor, label))
    return items


def test_a_patient_never_spans_two_splits_and_strata_keep_the_ratios():
    items = _items()
    got = splits.assign(items, seed=5)
    assert splits.leaks(items, got) == {}
    total = Counter(got.values())
    n = len(items)
    assert abs(total["train"] / n - 0.7) < 0.05
    assert abs(total["test"] / n - 0.15) < 0.05
    # every big stratum has all three splits
    by_stratum = {}
    for item in items:
        by_stratum.setdefault(item.stratum, Counter())[got[item.case_id]] += 1
    for counts in by_stratum.values():
        if sum(counts.values()) >= 20:
            assert set(counts) == {"train", "validation", "test"}, counts


def test_same_seed_same_draw_whatever_the_order_and_another_seed_differs():
    items = _items()
    shuffled = list(items)
    random.Random(1).shuffle(shuffled)
    assert splits.assign(items, seed=3) == splits.assign(shuffled, seed=3)
    assert splits.assign(items, seed=3) != splits.assign(items, seed=4)


def test_pinned_patients_keep_their_split_and_zero_ratio_is_empty():
    items = _items(50)
    fixed = {"p1": "test", "p2": "train"}
    got = splits.assign(items, ratios={"train": 0.8, "validation": 0.2, "test": 0}, fixed=fixed)
    assert {got[i.case_id] for i in items if i.patient_id == "p1"} == {"test"}
    assert "test" not in {got[i.case_id] for i in items if i.patient_id not in fixed}


def test_bad_ratios_are_refused():
    with pytest.raises(splits.SplitError):
        splits.normalise_ratios({"train": -1, "test": 2})
    with pytest.raises(splits.SplitError):
        splits.normalise_ratios({"holdout": 1})
    assert splits.normalise_ratios({"train": 3, "validation": 1}) == {
        "train": 0.75,
        "validation": 0.25,
        "test": 0.0,
    }


def test_changelog_is_computed_from_both_sides():
    parent = {
        "A": CaseState("train", findings={"k1": {"revision": 1, "status": "included"}}),
        "B": CaseState("test"),
        "C": CaseState("train"),
    }
    child = {
        "A": CaseState(
            "train",
            findings={
                "k1": {"revision": 2, "status": "excluded", "arbitration_task": 41},
                "k2": {"revision": 1, "status": "included", "arbitration_task": None},
            },
        ),
        "B": CaseState("test", retired=True, retired_reason="duplicate"),
        "D": CaseState("validation"),
    }
    log = compute("1.0.0", parent, child)
    assert log["cases_added"] == ["D"]
    assert log["cases_retired"] == [["B", "duplicate"], ["C", "not carried over"]]
    assert [(c["ref_key"], c["change"], c["arbitration_id"]) for c in log["reference_changes"]] == [
        ("k1", "changed", "41"),
        ("k2", "added", ""),
    ]
