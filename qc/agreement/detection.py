"""Detection agreement under the project's match rule (qc.matching).

- Against the reference standard, per reader and case: true positives are
  reader marks paired one-to-one with reference marks (`match_pairs`, optimal
  assignment), false negatives the unpaired reference marks, false positives
  the unpaired reader marks. Sensitivity TP/(TP+FN), false positives per case,
  F1 2TP/(2TP+FP+FN).
- Between readers: the case's marks of every read are clustered
  (`qc.matching.cluster`: single linkage under the rule, tightened until no
  cluster holds two marks of one read). Two readers agree on a cluster that
  holds a mark of each; their positive specific agreement is
  2 * shared / (marks of a + marks of b) over the cases both read.
- The LIDC table: how many clusters were marked by exactly 1, 2, ..., N readers.
"""

from __future__ import annotations

from collections.abc import Sequence

from qc.matching import Cluster, Grid, Mark, cluster, match_pairs


def against_reference(
    reference: Sequence[Mark],
    marks: Sequence[Mark],
    rule: str,
    threshold: float,
    grid: Grid | None = None,
) -> tuple[int, int, int]:
    """(true positives, false negatives, false positives) of one read of one case."""
    result = match_pairs(reference, marks, rule, threshold, grid)
    return len(result.pairs), len(result.missed), len(result.false_positives)


def clusters_of_case(
    marks: Sequence[Mark], rule: str, threshold: float, grid: Grid | None = None
) -> list[Cluster]:
    return cluster(marks, rule, threshold, grid)


def pair_counts(clusters: Sequence[Cluster], a: str, b: str) -> tuple[int, int, int]:
    """(clusters holding both a and b, marks of a, marks of b)."""
    shared = n_a = n_b = 0
    for c in clusters:
        readers = set(c.readers)
        has_a, has_b = a in readers, b in readers
        shared += has_a and has_b
        n_a += has_a
        n_b += has_b
    return shared, n_a, n_b


def lidc_table(clusters: Sequence[Cluster], n_readers: int) -> list[int]:
    """counts[k-1] = clusters marked by exactly k readers, k = 1..n_readers."""
    counts = [0] * max(n_readers, 1)
    for c in clusters:
        k = len(set(c.readers))
        if 1 <= k <= len(counts):
            counts[k - 1] += 1
    return counts
