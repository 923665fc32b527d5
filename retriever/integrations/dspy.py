"""DSPy: `GroundsearchRM`, a retrieval model `rm(query, k) -> passages`, and `as_tool()`, a typed function for agents.

    rm = GroundsearchRM.from_path("wiki.idx", k=3)
    dspy.configure(rm=rm)                      # dspy.settings.rm, read by dspy.Retrieve where DSPy has it
    rm("who wrote the nicomachean ethics")[0].long_text
    agent = dspy.ReAct("question -> answer", tools=[rm.as_tool()])

Plain Python: DSPy calls a retrieval model, it never inspects its class, so this module imports nothing of DSPy
and works (and is tested) without it; `pip install "groundsearch[dspy]"` installs DSPy itself. Each passage is a
`Passage`, a dict with attribute access as DSPy's own `dotdict` results have: `long_text` (the verbatim text,
which `dspy.Retrieve` reads), `text`, `score` and every other `Hit` field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from retriever.hit import Hit
from retriever.integrations._common import Searcher, check_k, metadata, open_path, open_url, search_options

__all__ = ["GroundsearchRM", "Passage"]


class Passage(dict[str, Any]):
    """One retrieved passage: a dict of every Hit field, readable as attributes (`passage.long_text`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def of(cls, hit: Hit) -> Passage:
        return cls(long_text=hit.text, text=hit.text, **metadata(hit))


class GroundsearchRM:
    """Search a groundsearch index as a DSPy retrieval model: `rm(query, k)` returns `k` `Passage`s, best first.

    `retriever` is an open `Retriever` or a `RemoteRetriever`; `k` the default number of passages; `options` any
    of `mode`, `filters`, `highlight`, `nprobe`, `ef_search`, `fusion`, `rerank`, passed to its `search`.
    """

    def __init__(self, retriever: Searcher, k: int = 3, **options: Any) -> None:
        self.retriever = retriever
        self.k = check_k(k)
        self.search_options = search_options(options)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], k: int = 3, **options: Any) -> GroundsearchRM:
        """Open the bundle at `path` in this process."""
        return cls(open_path(path), k, **options)

    @classmethod
    def from_url(cls, url: str, k: int = 3, *, timeout: float = 30.0, **options: Any) -> GroundsearchRM:
        """Search through a `groundsearch serve` at `url` (a `RemoteRetriever`)."""
        return cls(open_url(url, timeout), k, **options)

    def __call__(self, query: str | Sequence[str], k: int | None = None, **options: Any) -> list[Passage]:
        """The `k` best passages for `query`; for several queries (as `dspy.Retrieve` may pass), each query's `k`
        best in turn, a passage found twice kept once. `options` override the search options for this call."""
        queries = [query] if isinstance(query, str) else list(query)
        chosen = {**self.search_options, **search_options(options)}
        found: dict[int, Passage] = {}
        for hits in self._search(queries, check_k(k or self.k), chosen):
            for hit in hits:
                found.setdefault(hit.passage_id, Passage.of(hit))
        return list(found.values())

    def _search(self, queries: list[str], k: int, options: dict[str, Any]) -> list[list[Hit]]:
        batch = getattr(self.retriever, "search_batch", None)
        if batch is not None:
            return batch(queries, k=k, **options)  # type: ignore[no-any-return]
        return [self.retriever.search(query, k=k, **options) for query in queries]

    def as_tool(self) -> Callable[[str, int], list[str]]:
        """A plain typed function for `dspy.ReAct(..., tools=[rm.as_tool()])`: each passage with its citation."""
        default_k = self.k

        def search_corpus(query: str, k: int = default_k) -> list[str]:
            """Search the trusted corpus. Returns the k best passages, verbatim, each followed by its citation
            (title, permalink, passage id): quote passages as given and cite them."""
            return [f"{p.long_text}\n[{p.citation}]" for p in self(query, k)]

        return search_corpus
