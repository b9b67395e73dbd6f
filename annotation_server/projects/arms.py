"""The no-assistance arm: which cases are read without model proposals.

A protocol names a fraction (0-1) and a seed. A case belongs to the arm when a
hash of (seed, case id) falls below the fraction: deterministic (the same case
is in the same arm on every machine, in every process, whatever order cases
are asked about), independent between cases, and stable when cases are added
(adding a case never moves another one between arms). Raising the fraction
only adds cases to the arm. No Django here: a pure function, tested as one.
"""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def draw(case_id: int, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, case id)."""
    digest = hashlib.sha256(f"refset-unassisted:{int(seed)}:{int(case_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def unassisted(case_id: int, fraction: float, seed: int) -> bool:
    """Whether the case is read without proposals."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    return draw(case_id, seed) < fraction


def split(case_ids, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(assisted, unassisted) case ids, each in the order given."""
    assisted, without = [], []
    for case_id in case_ids:
        (without if unassisted(case_id, fraction, seed) else assisted).append(case_id)
    return assisted, without
