"""Merge the dense and the lexical ranking of one query into one ranking.

Each retriever returns (passage id, score) lists, best first. The methods:

- `rrf`: reciprocal rank fusion, sum of weight / (k + rank). Scale-free, but it throws the scores away: a
  passage that BM25 finds far ahead of everything else counts no more than a near tie.
- `minmax`: each list's scores scaled to [0, 1] over its own candidates, then a weighted sum; a passage
  missing from one list gets 0 from it.
- `zscore`: each list's scores standardised over its own candidates, then a weighted sum; a missing passage
  gets the lowest standardised score of that list.

`weight` is the dense retriever's share (the lexical one gets 1 - weight). The default (`DEFAULT_FUSION`) was
chosen by measurement on SQuAD (bench/fusion.py, table in the README); the others stay selectable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Ranking = Sequence[tuple[int, float]]
METHODS = ("rrf", "minmax", "zscore")


@dataclass(frozen=True)
class Fusion:
    """How a hybrid search merges its two rankings, and how deep it asks each retriever."""

    method: str = "minmax"
    weight: float = 0.5
    rrf_k: int = 60
    depth: int = 200

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown fusion {self.method!r}; the methods are {', '.join(METHODS)}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"fusion weight must lie in [0, 1], got {self.weight}")
        if self.depth < 1 or self.rrf_k < 0:
            raise ValueError("fusion depth must be >= 1 and rrf_k >= 0")


# Measured on SQuAD (bench/fusion.py): min-max fusion at equal weights over 200 candidates each beat both
# single modes at every k on both halves of the questions; plain RRF (k=60) lost to BM25 at rank 1.
DEFAULT_FUSION = Fusion(method="minmax", weight=0.5, rrf_k=60, depth=200)


@dataclass(frozen=True)
class Fused:
    """One passage of a fused ranking: its fused score, and its rank and score in each list that had it."""

    passage_id: int
    score: float
    dense: tuple[int, float] | None
    lexical: tuple[int, float] | None


def fuse(dense: Ranking, lexical: Ranking, fusion: Fusion = DEFAULT_FUSION) -> list[Fused]:
    """The union of both rankings, best fused score first; ties go to the better dense rank, then the lower id."""
    dense_at = {pid: (rank, score) for rank, (pid, score) in enumerate(dense, start=1)}
    lexical_at = {pid: (rank, score) for rank, (pid, score) in enumerate(lexical, start=1)}
    dense_part = _contributions(dense, fusion)
    lexical_part = _contributions(lexical, fusion)
    dense_floor = _floor(dense_part, fusion)
    lexical_floor = _floor(lexical_part, fusion)
    w = fusion.weight
    fused = [
        Fused(
            passage_id=pid,
            score=w * dense_part.get(pid, dense_floor) + (1.0 - w) * lexical_part.get(pid, lexical_floor),
            dense=dense_at.get(pid),
            lexical=lexical_at.get(pid),
        )
        for pid in dict.fromkeys([*dense_at, *lexical_at])
    ]
    fused.sort(key=lambda f: (-f.score, f.dense[0] if f.dense else math.inf, f.passage_id))
    return fused


def _contributions(ranking: Ranking, fusion: Fusion) -> dict[int, float]:
    """Each passage's share from one list, before weighting."""
    if not ranking:
        return {}
    if fusion.method == "rrf":
        return {pid: 1.0 / (fusion.rrf_k + rank) for rank, (pid, _) in enumerate(ranking, start=1)}
    scores = [score for _, score in ranking]
    if fusion.method == "minmax":
        low, high = min(scores), max(scores)
        span = high - low
        # One candidate, or all tied: they are all the best this list has.
        return {pid: (score - low) / span if span > 0 else 1.0 for pid, score in ranking}
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    return {pid: (score - mean) / std if std > 0 else 0.0 for pid, score in ranking}


def _floor(part: dict[int, float], fusion: Fusion) -> float:
    """What a list contributes for a passage it did not return."""
    if fusion.method == "zscore" and part:
        return min(part.values())
    return 0.0
