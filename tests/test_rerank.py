"""Reranking plumbing with a tiny cross-encoder made here from a small config (random weights, no download).

The tiny model's judgements are meaningless, so these tests check plumbing, not quality: the reranker
reorders exactly the first stage's passages by the scores the cross-encoder gives the same (query, text)
pairs, keeps every passage verbatim, and reports a bad model in one line. No quality claim is made without a
real model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from groundsearch.cli import app
from retriever import InvalidQuery, ModelUnavailable, Retriever
from retriever.bundle import embedding_text
from retriever.rerank import Reranker

QUERY = "hotel in Prince Edward Island"
runner = CliRunner()


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder: Path) -> Reranker:
    return Reranker(str(tiny_cross_encoder), device="cpu", depth=20)


def test_rerank_reorders_the_same_passages_by_the_cross_encoders_scores(
    retriever: Retriever, reranker: Reranker
) -> None:
    from sentence_transformers import CrossEncoder

    first = retriever.search(QUERY, k=20)
    reranked = reranker.rerank(QUERY, first, retriever.manifest.text_template)
    assert sorted(h.passage_id for h in reranked) == sorted(h.passage_id for h in first)
    assert [h.rank for h in reranked] == list(range(1, 21))
    # The scores are the cross-encoder's own for the (query, title + section + passage) pairs.
    model = CrossEncoder(str(reranker.folder), device="cpu")
    by_id = {h.passage_id: h for h in first}
    for hit in reranked:
        original = by_id[hit.passage_id]
        pair = (QUERY, embedding_text(original.title, original.section, original.text))
        assert hit.score == pytest.approx(float(model.predict([pair])[0]), abs=1e-4)
        # Nothing about the passage changes but its place: text, provenance, first-stage ranks.
        assert (hit.text, hit.sha256, hit.start, hit.end, hit.found_by) == (
            original.text,
            original.sha256,
            original.start,
            original.end,
            original.found_by,
        )
    scores = [h.score for h in reranked]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert [h.passage_id for h in reranked] != [h.passage_id for h in first]  # random weights do reorder


def test_search_with_a_reranker_returns_k_of_the_reranked_depth(retriever: Retriever, reranker: Reranker) -> None:
    hits = retriever.search(QUERY, k=5, rerank=reranker)
    expected = reranker.rerank(QUERY, retriever.search(QUERY, k=reranker.depth), retriever.manifest.text_template)
    assert [h.passage_id for h in hits] == [h.passage_id for h in expected[:5]]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(h.highlight is not None for h in hits)  # highlighted after reranking, for the k kept
    batch = retriever.search_batch([QUERY, "gunpowder"], k=3, rerank=reranker)
    assert [h.passage_id for h in batch[0]] == [h.passage_id for h in expected[:3]]


def test_bad_reranker_settings_are_clear_errors(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    with pytest.raises(InvalidQuery, match="rerank depth"):
        Reranker(str(tiny_cross_encoder), depth=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="cannot load as a sentence-transformers CrossEncoder"):
        Reranker(str(tmp_path / "empty"))
    with pytest.raises(ModelUnavailable, match="not a sentence-transformers model folder"):
        Reranker(str(tmp_path / "nope" / "model"))


def test_cli_rerank_option(small_index: Path, tiny_cross_encoder: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["query", str(small_index), QUERY, "-k", "3", "--rerank", str(tiny_cross_encoder)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("https://en.wikipedia.org/") == 3
    bad = runner.invoke(app, ["query", str(small_index), QUERY, "--rerank", str(tmp_path / "nope" / "model")])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
