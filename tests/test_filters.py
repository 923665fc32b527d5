"""Filters on a real index with the real model: every hit passes, in-filter gold passages are found at least as
well as without the filter, an exact filtered search equals the unfiltered ranking restricted to the filter, and
a filter that matches nothing says so, in the library, the CLI and the API."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from groundsearch.cli import app as cli_app
from retriever import MODES, Filter, FilterMatchesNothing, InvalidQuery, Retriever
from retriever.bundle import STORE_NAME
from web import create_app

# Questions whose right article we know (as tests/test_build_and_search.py), with two articles that outrank
# parts of it unfiltered: the filter holds the right article and those rivals.
QUESTIONS = {
    "royal governor seized the colony's gunpowder in 1775": "Gunpowder Incident",
    "compact complex manifold with many meromorphic functions": "Moishezon manifold",
    "hotel in Prince Edward Island": "Hotel Charlottetown",
    "thermoplastic elastomer block copolymer": "Kraton (polymer)",
}
K = 5


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


@pytest.fixture(scope="module")
def documents(small_index: Path) -> dict[int, tuple[str, str, set[int]]]:
    """document id -> (title, source file, its passage ids), read from the store itself."""
    with sqlite3.connect(small_index / STORE_NAME) as db:
        rows = db.execute(
            "SELECT d.id, d.title, d.source, p.id FROM documents d JOIN passages p ON p.document_id = d.id"
        )
        found: dict[int, tuple[str, str, set[int]]] = {}
        for document_id, title, source, passage_id in rows:
            found.setdefault(document_id, (title, source, set()))[2].add(passage_id)
    return found


def passages_of(documents: dict[int, tuple[str, str, set[int]]], titles: set[str]) -> set[int]:
    return {pid for title, _, ids in documents.values() if title in titles for pid in ids}


@pytest.mark.parametrize("mode", MODES)
def test_every_hit_passes_and_in_filter_gold_recall_is_not_worse(
    retriever: Retriever, documents: dict[int, tuple[str, str, set[int]]], mode: str
) -> None:
    found = {"filtered": 0, "unfiltered": 0}
    for question, right in QUESTIONS.items():
        unfiltered = retriever.search(question, k=K, mode=mode)
        rivals = list(dict.fromkeys(h.title for h in retriever.search(question, k=30, mode=mode) if h.title != right))
        titles = {right, *rivals[:2]}
        filtered = retriever.search(question, k=K, mode=mode, filters={"title": sorted(titles)})
        allowed = passages_of(documents, titles)
        assert filtered and all(h.passage_id in allowed and h.title in titles for h in filtered)
        if mode != "lexical":  # lexical hits need a query term; dense and hybrid fill k from inside the filter
            assert len(filtered) == min(K, len(allowed))
        gold = passages_of(documents, {right})
        found["filtered"] += sum(h.passage_id in gold for h in filtered)
        found["unfiltered"] += sum(h.passage_id in gold for h in unfiltered)
    assert found["filtered"] >= found["unfiltered"] > 0, found


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_an_exact_filtered_search_is_the_full_ranking_restricted(
    retriever: Retriever, documents: dict[int, tuple[str, str, set[int]]], mode: str
) -> None:
    """The index is Flat (exact) and BM25 scores do not depend on the filter: nothing may be lost or rescored."""
    chosen = Filter(documents=(1, 10, 20, 30))
    allowed = {pid for d in chosen.documents for pid in documents[d][2]}
    for question in QUESTIONS:
        everything = retriever.search(question, k=len(retriever), mode=mode, highlight=False)
        restricted = [(h.passage_id, h.score) for h in everything if h.passage_id in allowed][:K]
        filtered = retriever.search(question, k=K, mode=mode, highlight=False, filters=chosen)
        assert [h.score for h in filtered] == pytest.approx([score for _, score in restricted])
        if mode == "dense":
            assert [h.passage_id for h in filtered] == [pid for pid, _ in restricted]


def test_fields_are_anded_values_ored_and_sources_match_by_file_name(
    retriever: Retriever, documents: dict[int, tuple[str, str, set[int]]], small_index: Path
) -> None:
    title, source, ids = documents[3]
    both = retriever.search("history", k=50, filters={"title": [title, documents[4][0]], "document": [3]})
    assert both and {h.passage_id for h in both} <= ids
    # A path is reduced to its file name, as `groundsearch info` lists sources.
    whole = retriever.search("history", k=3, filters=Filter(sources=(f"/elsewhere/{source}",)))
    assert len(whole) == 3
    with pytest.raises(FilterMatchesNothing, match="title 'Gunpowder Incident'; source 'other.xml'"):
        retriever.search("history", filters={"title": "Gunpowder Incident", "source": "other.xml"})
    # The batch path filters every query.
    rows = retriever.search_batch(list(QUESTIONS), k=3, filters={"document": 3})
    assert all(h.passage_id in ids for row in rows for h in row)


def test_a_filter_matching_nothing_says_so(retriever: Retriever) -> None:
    with pytest.raises(FilterMatchesNothing, match="no document matches the filter \\(title 'No such article'\\)"):
        retriever.search("hotel", filters={"title": "No such article"})
    with pytest.raises(FilterMatchesNothing):  # an InvalidQuery too, so every edge already reports it
        retriever.search("hotel", filters=Filter(documents=(10**9,)))
    assert issubclass(FilterMatchesNothing, InvalidQuery)
    # A filter that matches documents but no query term: no lexical hit, as without a filter.
    assert retriever.search("zzzqqq", mode="lexical", filters={"document": 3}) == []
    # An empty filter restricts nothing.
    assert retriever.search("hotel", k=3, filters={}) == retriever.search("hotel", k=3)


@pytest.mark.parametrize(
    "filters,message",
    [
        ({"titel": "x"}, "unknown filter 'titel'"),
        ({"documents": ["3"]}, "document ids"),
        ({"documents": [-1]}, "document ids"),
        ({"titles": [""]}, "non-empty strings"),
        ("Paris", "a Filter or a mapping"),
    ],
)
def test_malformed_filters_are_invalid_queries(retriever: Retriever, filters: object, message: str) -> None:
    with pytest.raises(InvalidQuery, match=message):
        retriever.search("hotel", filters=filters)  # type: ignore[arg-type]


def test_cli_title_and_document(small_index: Path, documents: dict[int, tuple[str, str, set[int]]]) -> None:
    runner = CliRunner()
    args = ["query", str(small_index), "hotel", "--json", "-k", "3", "--title", "Gunpowder Incident"]
    result = runner.invoke(cli_app, [*args, "--document", "1"])
    assert result.exit_code == 0, result.output
    assert {h["title"] for h in json.loads(result.stdout)["hits"]} == {"Gunpowder Incident"}
    refused = runner.invoke(cli_app, [*args, "--document", "2"])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: no document matches the filter") and refused.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def client(retriever: Retriever) -> Iterator[TestClient]:
    with TestClient(create_app(retriever)) as c:
        yield c


def test_api_filters_equal_the_librarys(client: TestClient, retriever: Retriever) -> None:
    params = {"q": "hotel", "k": 4, "title": ["Gunpowder Incident", "Hotel Charlottetown"], "document": [1, 10]}
    body = client.get("/api/search", params=params).json()
    expected = retriever.search("hotel", k=4, filters={"title": params["title"], "document": [1, 10]})
    assert [h["passage_id"] for h in body["hits"]] == [h.passage_id for h in expected]
    batch = client.post("/api/search/batch", json={"queries": ["hotel"], "k": 4, "filters": {"documents": [1, 10]}})
    assert [h["passage_id"] for h in batch.json()["results"][0]["hits"]] == [h.passage_id for h in expected]
    refused = client.get("/api/search", params={"q": "hotel", "title": "No such article"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["type"] == "filter_matches_nothing"
    assert client.get("/api/search", params={"q": "hotel", "document": -1}).status_code == 422


@pytest.mark.parametrize("factory,params", [("IVF8,Flat", {"nprobe": 1}), ("HNSW8", {"efSearch": 16})])
def test_an_approximate_index_widens_a_filtered_search(
    retriever: Retriever, small_index: Path, factory: str, params: dict[str, int]
) -> None:
    """The bundle's vectors in an IVF (one list of eight visited) and an HNSW index, in memory: a filter of one
    document still gets its best passages, as exact search ranks them, not only those near the query."""
    import dataclasses

    import faiss
    import numpy as np

    from retriever.store import PassageStore

    vectors = np.vstack([retriever.faiss_index.reconstruct(i) for i in range(len(retriever))])
    inner = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    inner.train(vectors)
    approximate = faiss.IndexIDMap2(inner)
    approximate.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    manifest = dataclasses.replace(retriever.manifest, search_params=params)
    store = PassageStore(small_index / STORE_NAME)
    widened = Retriever(small_index, manifest, approximate, store, retriever.encoder)
    for document in (1, 10, 40):
        for question in QUESTIONS:
            exact = retriever.search(question, k=K, mode="dense", highlight=False, filters={"document": document})
            found = widened.search(question, k=K, mode="dense", highlight=False, filters={"document": document})
            assert [h.passage_id for h in found] == [h.passage_id for h in exact], (factory, document, question)
