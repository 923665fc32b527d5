"""Each framework adapter through the framework's own entry point (LangChain `invoke`, LlamaIndex `retrieve`,
Haystack `Pipeline.run`) on a real index: the library's hits, verbatim, with every Hit field as metadata.

DSPy (46 packages, 311 MB over the query-only install) is not installed for the tests; its adapter imports
nothing of DSPy, and its contract (what `dspy.Retrieve` and `dspy.ReAct` call and read) is tested here without it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from retriever import FilterMatchesNothing, Hit, Retriever

QUESTION = "hotel in Prince Edward Island"
FILTERS = {"title": ["Gunpowder Incident", "Hotel Charlottetown"]}
HIT_FIELDS = {f.name for f in fields(Hit)} - {"text"}


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


def same_as_library(retriever: Retriever, ids: list[str], texts: list[str], metas: list[dict], **search) -> None:  # type: ignore[type-arg]
    """The framework's documents are the library's hits, in order, each with every Hit field."""
    hits = retriever.search(QUESTION, **search)
    assert ids == [str(h.passage_id) for h in hits]
    assert texts == [h.text for h in hits]
    for meta, hit in zip(metas, hits, strict=True):
        assert HIT_FIELDS | {"permalink", "citation"} <= set(meta)
        assert meta["sha256"] == hit.sha256 and meta["permalink"] == hit.permalink and meta["score"] == hit.score
        assert meta["citation"] == hit.citation()


def test_langchain_invoke(retriever: Retriever, small_index: Path) -> None:
    from langchain_core.retrievers import BaseRetriever

    from retriever.integrations.langchain import GroundsearchRetriever

    lc = GroundsearchRetriever.from_path(small_index, k=3, mode="dense")
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke(QUESTION)
    same_as_library(
        retriever, [d.id for d in docs], [d.page_content for d in docs], [d.metadata for d in docs], k=3, mode="dense"
    )
    # Wrapping an open Retriever; per-call k and filters; ainvoke (LangChain's executor) gives the same.
    wrapped = GroundsearchRetriever(retriever=retriever, k=4, search_options={"filters": FILTERS, "highlight": False})
    docs = wrapped.invoke(QUESTION)
    same_as_library(
        retriever,
        [d.id for d in docs],
        [d.page_content for d in docs],
        [d.metadata for d in docs],
        k=4,
        filters=FILTERS,
        highlight=False,
    )
    assert all(d.metadata["highlight"] is None for d in docs)
    assert [d.id for d in asyncio.run(wrapped.ainvoke(QUESTION))] == [d.id for d in docs]
    assert len(wrapped.invoke(QUESTION, k=1)) == 1
    with pytest.raises(FilterMatchesNothing):
        wrapped.invoke(QUESTION, filters={"title": "No such article"})
    with pytest.raises(TypeError, match="unknown search option 'top_k'"):
        GroundsearchRetriever.from_path(small_index, top_k=3)


def test_llamaindex_retrieve(retriever: Retriever, small_index: Path) -> None:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import MetadataMode, QueryBundle

    from retriever.integrations.llamaindex import GroundsearchRetriever

    li = GroundsearchRetriever.from_path(small_index, k=3, filters=FILTERS)
    assert isinstance(li, BaseRetriever)
    found = li.retrieve(QUESTION)
    nodes = [n.node for n in found]
    same_as_library(
        retriever,
        [n.node_id for n in nodes],
        [n.text for n in nodes],
        [n.metadata for n in nodes],
        k=3,
        filters=FILTERS,
    )
    hits = retriever.search(QUESTION, k=3, filters=FILTERS)
    assert [n.score for n in found] == [h.score for h in hits]
    assert [(n.start_char_idx, n.end_char_idx) for n in nodes] == [(h.start, h.end) for h in hits]
    # What an LLM reads: the title, section and permalink with the text; hashes and ranks stay out of prompts.
    prompt = nodes[0].get_content(MetadataMode.LLM)
    assert hits[0].title in prompt and hits[0].text in prompt and hits[0].sha256 not in prompt
    assert nodes[0].get_content(MetadataMode.EMBED) == hits[0].text
    assert [
        n.node.node_id for n in GroundsearchRetriever(retriever, 3, filters=FILTERS).retrieve(QueryBundle(QUESTION))
    ] == [n.node_id for n in nodes]


def test_haystack_pipeline_run_and_serialisation(retriever: Retriever, small_index: Path) -> None:
    from haystack import Pipeline

    from retriever.integrations.haystack import GroundsearchRetriever

    pipeline = Pipeline()
    pipeline.add_component("retriever", GroundsearchRetriever(str(small_index), top_k=3, mode="lexical"))
    docs = pipeline.run({"retriever": {"query": QUESTION}})["retriever"]["documents"]
    same_as_library(
        retriever, [d.id for d in docs], [d.content for d in docs], [d.meta for d in docs], k=3, mode="lexical"
    )
    assert [d.score for d in docs] == [h.score for h in retriever.search(QUESTION, k=3, mode="lexical")]
    # Haystack's filter syntax, per run, with top_k.
    haystack_filters = {
        "operator": "AND",
        "conditions": [{"field": "meta.title", "operator": "in", "value": FILTERS["title"]}],
    }
    run = pipeline.run({"retriever": {"query": QUESTION, "top_k": 4, "filters": haystack_filters}})
    docs = run["retriever"]["documents"]
    same_as_library(
        retriever,
        [d.id for d in docs],
        [d.content for d in docs],
        [d.meta for d in docs],
        k=4,
        mode="lexical",
        filters=FILTERS,
    )
    # A pipeline serialises and loads back (Haystack loads only modules it is told to trust).
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["retriever.integrations.haystack"])
    again = loaded.run({"retriever": {"query": QUESTION}})["retriever"]["documents"]
    assert [d.id for d in again] == [str(h.passage_id) for h in retriever.search(QUESTION, k=3, mode="lexical")]
    wrapped = GroundsearchRetriever(retriever=retriever, top_k=2)
    assert wrapped.to_dict()["init_parameters"]["path"] == str(small_index)
    assert len(wrapped.run(QUESTION)["documents"]) == 2
    from_path = GroundsearchRetriever.from_path(small_index, k=2, filters={"titles": ["Gunpowder Incident"]})
    assert {d.meta["title"] for d in from_path.run(QUESTION)["documents"]} == {"Gunpowder Incident"}
    with pytest.raises(ValueError, match="exactly one of"):
        GroundsearchRetriever()


def test_dspy_rm_contract(retriever: Retriever, small_index: Path) -> None:
    """What DSPy calls: `rm(query, k=k)` (dspy.Retrieve reads `.long_text`), and a typed tool for ReAct."""
    from retriever.integrations.dspy import GroundsearchRM

    rm = GroundsearchRM.from_path(small_index, k=3, mode="hybrid")
    passages = rm(QUESTION, k=2)
    hits = retriever.search(QUESTION, k=2, mode="hybrid")
    assert [p.long_text for p in passages] == [h.text for h in hits]
    assert [p.passage_id for p in passages] == [h.passage_id for h in hits] and passages[0]["score"] == hits[0].score
    assert set(passages[0]) >= HIT_FIELDS and len(rm(QUESTION)) == 3
    # Several queries, as dspy.Retrieve may pass them: each query's best, a passage found twice kept once.
    several = rm([QUESTION, QUESTION, "complex manifold"], k=2)
    expected = [h.passage_id for q in (QUESTION, "complex manifold") for h in retriever.search(q, k=2, mode="hybrid")]
    assert [p.passage_id for p in several] == list(dict.fromkeys(expected))
    tool = rm.as_tool()
    assert inspect.isfunction(tool) and tool.__doc__
    assert typing.get_type_hints(tool) == {"query": str, "k": int, "return": list[str]}
    assert inspect.signature(tool).parameters["k"].default == 3
    answer = tool(QUESTION, 1)
    assert answer == [f"{hits[0].text}\n[{hits[0].citation()}]"]
    assert GroundsearchRM(retriever, 1, filters=FILTERS)(QUESTION)[0].title in FILTERS["title"]


@pytest.mark.parametrize(
    "module,extra,package",
    [
        ("langchain", "langchain", "langchain_core"),
        ("llamaindex", "llamaindex", "llama_index"),
        ("haystack", "haystack", "haystack"),
    ],
)
def test_a_missing_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, extra: str, package: str
) -> None:
    # What importing the package meets when it is not installed; its loaded submodules too, which an import of
    # `package.sub` would otherwise find first.
    for name in [package, *(name for name in sys.modules if name.startswith(f"{package}."))]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, f"retriever.integrations.{module}", raising=False)
    with pytest.raises(ImportError) as missing:
        importlib.import_module(f"retriever.integrations.{module}")
    assert str(missing.value).endswith(f'pip install "groundsearch[{extra}]"') and "\n" not in str(missing.value)


def test_nothing_in_retriever_imports_the_adapters() -> None:
    root = Path(__file__).resolve().parents[1] / "retriever"
    for path in root.glob("*.py"):
        assert "integrations" not in path.read_text(encoding="utf-8"), path
