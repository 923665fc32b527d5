"""End to end on real pages with the real model: build, search, fetch; every passage verbatim and cited."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from index_build.readers import open_corpus
from retriever import InvalidQuery, PassageNotFound, Retriever
from retriever.bundle import STORE_NAME, read_manifest
from retriever.store import PassageStore

# Questions whose right article we know, phrased without the article's title words where possible.
QUESTIONS = {
    "British children's television series about a boy whose watch can stop time": "Bernard's Watch",
    "royal governor seized the colony's gunpowder in 1775": "Gunpowder Incident",
    "compact complex manifold with many meromorphic functions": "Moishezon manifold",
    "hotel in Prince Edward Island": "Hotel Charlottetown",
    "thermoplastic elastomer block copolymer": "Kraton (polymer)",
    "Haitian politician and police chief": "Dany Toussaint",
}


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


@pytest.mark.parametrize("question,title", QUESTIONS.items())
def test_right_article_in_top_5(retriever: Retriever, question: str, title: str) -> None:
    hits = retriever.search(question, k=5)
    assert title in [h.title for h in hits], [h.title for h in hits]


def test_hits_are_stored_passages_byte_for_byte(retriever: Retriever, corpus_xml: Path) -> None:
    articles = {d.title: d.text for d in open_corpus(corpus_xml)}
    hits = retriever.search("history", k=len(retriever) + 5)
    assert len(hits) == len(retriever)  # k above the passage count returns every passage
    for hit in hits:
        assert hashlib.sha256(hit.text.encode("utf-8")).hexdigest() == hit.sha256
        assert articles[hit.title][hit.start : hit.end] == hit.text
        assert hit.url and hit.url.startswith("https://en.wikipedia.org/wiki/")
        assert hit.revision and hit.permalink and f"oldid={hit.revision}" in hit.permalink
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_get_returns_the_same_passage(retriever: Retriever) -> None:
    hit = retriever.search("gunpowder", k=1)[0]
    same = retriever.get(hit.passage_id)
    assert (same.text, same.sha256, same.title, same.start, same.end) == (
        hit.text,
        hit.sha256,
        hit.title,
        hit.start,
        hit.end,
    )
    with pytest.raises(PassageNotFound, match="no passage with id"):
        retriever.get(10**9)


def test_search_batch_equals_single_searches(retriever: Retriever) -> None:
    questions = list(QUESTIONS)
    batched = retriever.search_batch(questions, k=3)
    for question, hits in zip(questions, batched, strict=True):
        assert [h.passage_id for h in hits] == [h.passage_id for h in retriever.search(question, k=3)]


def test_many_threads_get_unmixed_answers(retriever: Retriever) -> None:
    questions = list(QUESTIONS) * 4
    expected = {q: [h.passage_id for h in retriever.search(q, k=5)] for q in QUESTIONS}
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(i: int, question: str) -> None:
        try:
            results[i] = [h.passage_id for h in retriever.search(question, k=5)]
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, q)) for i, q in enumerate(questions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(results[i] == expected[q] for i, q in enumerate(questions))


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_is_refused(retriever: Retriever, query: str) -> None:
    with pytest.raises(InvalidQuery, match="empty query"):
        retriever.search(query)


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one_is_refused(retriever: Retriever, k: int) -> None:
    with pytest.raises(InvalidQuery, match="k must be"):
        retriever.search("airport", k=k)


def test_store_and_manifest_agree(small_index: Path) -> None:
    manifest = read_manifest(small_index)
    store = PassageStore(small_index / STORE_NAME)
    assert store.count() == manifest.passages and store.count("documents") == manifest.documents
    assert manifest.faiss_factory == "Flat" and manifest.model.dimension == 384
    assert manifest.sources[0].format == "mediawiki" and len(manifest.sources[0].sha256) == 64


def test_hits_from_navigation_pages_say_so(retriever: Retriever, small_index: Path, tmp_path: Path) -> None:
    # "Elgin Theatre" is a {{disambig}} page in the corpus; "Gunpowder Incident" an article.
    menu = retriever.search("Elgin Theatre", k=3, filters={"title": ["Elgin Theatre"]})
    article = retriever.search("gunpowder", k=3, filters={"title": ["Gunpowder Incident"]})
    assert menu and {h.page_kind for h in menu} == {"disambiguation"}
    assert article and {h.page_kind for h in article} == {None}
    assert menu[0].to_dict()["page_kind"] == "disambiguation"
    # A store built before pages were flagged has no kind column: it opens, and its hits have no page kind.
    old = tmp_path / STORE_NAME
    old.write_bytes((small_index / STORE_NAME).read_bytes())
    with closing(sqlite3.connect(old)) as conn, conn:
        conn.execute("ALTER TABLE documents DROP COLUMN kind")
    stored = PassageStore(old).fetch([menu[0].passage_id])[menu[0].passage_id]
    assert stored.kind is None and stored.text == menu[0].text
