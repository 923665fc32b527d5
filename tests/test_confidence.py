"""Match confidence: the fitting arithmetic on known cases, and on a real index that a gibberish query is flagged
as having no good match while a question the corpus answers is not, without changing what is returned."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evaluation.abstention import abstention, auroc
from groundsearch.cli import app
from index_build.calibration import CALIBRATIONS_DIR, calibration_for, choose_threshold, fit_logistic
from retriever import Calibration, Retriever
from retriever.confidence import FEATURES, evidence_of
from retriever.model import packaged_model_dir

runner = CliRunner()
GIBBERISH = "xyzzyqwv"
# A question one article of the end-to-end corpus answers in so many words.
ANSWERED = "who ordered the removal of the gunpowder from the williamsburg magazine"


def test_auroc_is_the_share_of_correctly_ordered_pairs() -> None:
    rng = np.random.default_rng(0)
    positives = rng.normal(1.0, 1.0, 40).round(1).tolist()  # rounded: ties must count one half
    negatives = rng.normal(0.0, 1.0, 30).round(1).tolist()
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)]
    assert auroc(positives, negatives) == pytest.approx(sum(pairs) / len(pairs))
    assert auroc([2.0, 3.0], [0.0, 1.0]) == 1.0 and auroc([0.0], [1.0]) == 0.0 and auroc([1.0], [1.0]) == 0.5


def test_threshold_flags_at_most_the_share_asked() -> None:
    answerable = np.linspace(0.0, 1.0, 101).tolist()
    bar = choose_threshold(answerable, 0.05)
    assert sum(c < bar for c in answerable) == 5
    figures = abstention("hybrid", answerable, [0.0, 0.01, 0.5], bar)
    assert figures.flagged_answerable == pytest.approx(5 / 101) and figures.flagged_unanswerable == pytest.approx(2 / 3)


def test_logistic_fit_recovers_a_known_model() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 2))
    p = 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5)))
    y = (rng.random(4000) < p).astype(float)
    weights, bias = fit_logistic(x, y, l2=0.0)
    assert weights == pytest.approx([2.0, -1.0], abs=0.25) and bias == pytest.approx(0.5, abs=0.2)
    with pytest.raises(ValueError, match="both"):
        fit_logistic(x, np.ones(4000))


def test_evidence_is_on_corpus_free_scales() -> None:
    weights = {"gandhi": 3.0, "rocket": 1.0}
    full = evidence_of(weights, {"gandhi", "rocket", "engin"}, 0.7, 2.2 * 4.0)
    assert (full.cosine, full.bm25, full.coverage) == (0.7, 1.0, 1.0)
    part = evidence_of(weights, {"rocket"}, None, 1.1)
    assert part.cosine is None and part.coverage == 0.25 and part.bm25 == pytest.approx(1.1 / 8.8)
    assert evidence_of({}, {"x"}, 0.2, 0.0).coverage == 0.0
    assert part.features("hybrid") == [0.0, pytest.approx(0.125), 0.25]


def test_the_default_model_ships_a_calibration_and_others_say_why_not() -> None:
    folder = packaged_model_dir()
    assert folder is not None
    shipped = [json.loads(p.read_text()) for p in CALIBRATIONS_DIR.glob("*.json")]
    assert shipped, "no calibration in index_build/calibrations/"
    data, reason = calibration_for(shipped[0]["model_weights_sha256"])
    assert reason is None and data is not None
    calibration = Calibration.from_dict(data)
    assert set(calibration.modes) == set(FEATURES) and all(0 < calibration.threshold(mode) < 1 for mode in FEATURES)
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    none, why = calibration_for("0" * 64)
    assert none is None and why is not None and why.startswith("uncalibrated")


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


def test_gibberish_is_flagged_and_an_answered_question_is_not(retriever: Retriever) -> None:
    assert retriever.calibration is not None, retriever.manifest.no_confidence
    for mode in retriever.modes:
        miss = retriever.search_with_status(GIBBERISH, k=5, mode=mode)
        assert miss.answerable is False, mode
        # Lexical search finds nothing for a word no passage holds; the other modes list k weak hits.
        assert len(miss.hits) == (0 if mode == "lexical" else 5) and all(miss.is_weak(hit) for hit in miss.hits)
        found = retriever.search_with_status(ANSWERED, k=5, mode=mode)
        assert found.answerable is True, (mode, found.confidence)
        assert found.hits[0].title == "Gunpowder Incident" and found.confidence == max(h.confidence for h in found.hits)
        assert all(0.0 <= (h.confidence or -1) <= 1.0 for h in found.hits)


def test_confidence_only_labels_hits(retriever: Retriever) -> None:
    queries = [ANSWERED, GIBBERISH, "history of the roman empire"]
    for mode in retriever.modes:
        labelled = retriever.search_batch(queries, k=10, mode=mode)
        plain = retriever.search_batch(queries, k=10, mode=mode, confidence=False)
        assert [[(h.passage_id, h.score) for h in row] for row in labelled] == [
            [(h.passage_id, h.score) for h in row] for row in plain
        ]
        assert all(h.confidence is None for row in plain for h in row)


def test_min_confidence_moves_the_bar(retriever: Retriever) -> None:
    found = retriever.search_with_status(ANSWERED, k=3)
    assert found.confidence is not None
    assert retriever.search_with_status(ANSWERED, k=3, min_confidence=1.0).answerable is (found.confidence >= 1.0)
    assert retriever.search_with_status(GIBBERISH, k=3, min_confidence=0.0).answerable is True
    with pytest.raises(Exception, match="min_confidence"):
        retriever.search_with_status(ANSWERED, min_confidence=1.5)


def test_cli_says_when_nothing_matches(small_index: Path) -> None:
    result = runner.invoke(app, ["query", str(small_index), GIBBERISH, "-k", "3"])
    assert result.exit_code == 0, result.output
    first, *rest = result.stdout.splitlines()
    assert first.startswith("No passage in this corpus matches well")
    assert sum("(weak)" in line for line in rest) == 3
    document = json.loads(runner.invoke(app, ["query", str(small_index), ANSWERED, "-k", "3", "--json"]).stdout)
    assert document["answerable"] is True and document["min_confidence"] > 0
    assert all(0 <= h["confidence"] <= 1 for h in document["hits"])
