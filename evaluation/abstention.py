"""How well a search says "no good match": questions the index can answer against questions it cannot.

A question counts as flagged when its result is not `answerable` (its best hit's confidence is below the bar).
AUROC is over the best hit's confidence, answerable questions as positives: the chance that a random answerable
question outscores a random unanswerable one, whatever bar is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Abstention:
    """One mode's abstention figures at the bar `threshold` (shares in [0, 1])."""

    mode: str
    auroc: float
    flagged_answerable: float
    flagged_unanswerable: float
    threshold: float
    answerable_questions: int
    unanswerable_questions: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"abstention ({self.mode}, {self.unanswerable_questions} unanswerable questions, bar "
            f"{self.threshold:.3f}): AUROC {self.auroc:.3f}, flagged {self.flagged_answerable:.1%} of answerable, "
            f"{self.flagged_unanswerable:.1%} of unanswerable"
        )


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Area under the ROC curve: P(positive > negative), ties counting one half (the Mann-Whitney U form)."""
    if not positives or not negatives:
        raise ValueError("AUROC needs at least one positive and one negative score")
    scores = np.concatenate([np.asarray(positives, float), np.asarray(negatives, float)])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties, so that equal scores count one half.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0
    n_pos, n_neg = len(positives), len(negatives)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def abstention(mode: str, answerable: Sequence[float], unanswerable: Sequence[float], threshold: float) -> Abstention:
    """The figures for best-hit confidences of answerable and of unanswerable questions at `threshold`."""
    return Abstention(
        mode=mode,
        auroc=auroc(answerable, unanswerable),
        flagged_answerable=float(np.mean(np.asarray(answerable) < threshold)),
        flagged_unanswerable=float(np.mean(np.asarray(unanswerable) < threshold)),
        threshold=threshold,
        answerable_questions=len(answerable),
        unanswerable_questions=len(unanswerable),
    )
