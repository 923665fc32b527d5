"""Match confidence: how likely a hit is to be the passage that answers the query, and whether any hit is.

The engine never writes text, but a miss that looks like a find is just as harmful to a QA tool: every search
returns k hits, even for a query the corpus cannot answer. So each hit gets a `confidence` in [0, 1], a
logistic model over evidence the search computes anyway, and a result is `answerable` when its best hit's
confidence reaches a threshold.

The evidence (`Evidence`) is chosen to mean the same on any corpus, since a calibration is fitted once per model
on a small corpus and then used on indexes of every size:

- `cosine`: the dense side's cosine similarity of query and passage (model-dependent, corpus-independent);
- `bm25`: the BM25 score divided by the most the query's terms could score (`BM25_TERM_MAX` times the sum of
  their IDFs), so 1.0 is every term at saturation whatever the corpus's size;
- `coverage`: the share of the query's IDF mass whose terms occur in the passage (as the highlighter weighs
  them), so a passage holding the rare words of the query scores near 1.0.

A hit one side did not return (in hybrid mode) gets that side's lowest candidate score, a bound on its own. Each
mode has its own weights, since lexical mode has no cosine and dense mode no BM25 score. The weights and the
threshold are fitted by `bench/calibrate.py` and stored in the bundle's manifest; see the README.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# BM25's saturation: a term's score is at most idf * (k1 + 1), k1 = 1.2 in tantivy.
BM25_TERM_MAX = 2.2
CALIBRATION_VERSION = 1
FEATURES: dict[str, tuple[str, ...]] = {
    "dense": ("cosine", "coverage"),
    "lexical": ("bm25", "coverage"),
    "hybrid": ("cosine", "bm25", "coverage"),
}


@dataclass(frozen=True)
class Evidence:
    """What a search knows about one hit, on scales that mean the same on any corpus (see the module doc)."""

    cosine: float | None
    bm25: float | None
    coverage: float

    def features(self, mode: str) -> list[float]:
        """The values `FEATURES[mode]` names, in that order; a side the mode did not search counts as 0."""
        return self.values(FEATURES[mode])

    def values(self, names: Sequence[str]) -> list[float]:
        """The named pieces of evidence, in that order; a side not searched (None) counts as 0."""
        return [float(getattr(self, name) or 0.0) for name in names]


@dataclass(frozen=True)
class ModeWeights:
    """A logistic model for one search mode: confidence = sigmoid(bias + sum(weights * features)), and the
    mode's default bar: a result is answerable when its best hit's confidence reaches `threshold`."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, evidence: Evidence) -> float:
        values = evidence.values(self.features)
        z = self.bias + sum(w * v for w, v in zip(self.weights, values, strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@dataclass(frozen=True)
class Calibration:
    """The fitted confidence model of one bundle's embedding model, as the manifest stores it.

    `fitted_on` says what data the weights and bars came from, `report` what they measured on held-out data.
    """

    modes: dict[str, ModeWeights]
    model_weights_sha256: str
    fitted_on: str
    version: int = CALIBRATION_VERSION
    report: dict[str, Any] = field(default_factory=dict)

    def confidence(self, mode: str, evidence: Evidence) -> float | None:
        weights = self.modes.get(mode)
        return weights.probability(evidence) if weights is not None else None

    def threshold(self, mode: str) -> float | None:
        """The mode's default `min_confidence`; None for a mode without a fitted model."""
        weights = self.modes.get(mode)
        return weights.threshold if weights is not None else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        data = dict(data)
        data["modes"] = {
            mode: ModeWeights(tuple(w["features"]), tuple(w["weights"]), float(w["bias"]), float(w["threshold"]))
            for mode, w in data["modes"].items()
        }
        return cls(**data)


def calibration_summary(data: Mapping[str, Any] | None, reason: str | None) -> str:
    """One line for `groundsearch info`: each mode's bar, or why there is no calibration."""
    if data is None:
        return reason or "none: built before match confidence existed (rebuild for it)"
    bars = ", ".join(f"{mode} {w.threshold:.3f}" for mode, w in Calibration.from_dict(data).modes.items())
    return f"calibrated; bars {bars}"


def evidence_of(
    query_weights: Mapping[str, float],
    passage_terms: Collection[str],
    dense_score: float | None,
    lexical_score: float | None,
) -> Evidence:
    """One hit's evidence from its scores (None for a side not searched) and the query's terms with their IDFs."""
    total = sum(query_weights.values())
    held = sum(w for term, w in query_weights.items() if term in passage_terms)
    coverage = held / total if total > 0 else 0.0
    bm25 = None
    if lexical_score is not None:
        bm25 = min(1.0, lexical_score / (BM25_TERM_MAX * total)) if total > 0 else 0.0
    return Evidence(cosine=dense_score, bm25=bm25, coverage=coverage)


def best_confidence(confidences: Sequence[float | None]) -> float | None:
    """The highest confidence of a result's hits; None when they have none (an uncalibrated index)."""
    known = [c for c in confidences if c is not None]
    return max(known) if known else None
