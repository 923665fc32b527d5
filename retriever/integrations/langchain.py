"""LangChain: `GroundsearchRetriever`, a `BaseRetriever` whose documents are verbatim passages with their provenance.

    retriever = GroundsearchRetriever.from_path("wiki.idx", k=4, mode="hybrid")
    docs = retriever.invoke("who wrote the nicomachean ethics")
    docs[0].page_content, docs[0].metadata["permalink"], docs[0].metadata["sha256"]

Needs `pip install "groundsearch[langchain]"` (langchain-core). There is no native async variant: a search is
CPU work in this process (or a blocking HTTP call), so `ainvoke` keeps LangChain's default, the sync search
in its executor.
"""

from __future__ import annotations

import os
from typing import Any

from retriever.integrations._common import (
    Searcher,
    check_k,
    document_id,
    metadata,
    missing_extra,
    open_path,
    open_url,
    search_options,
)

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict, Field, field_validator
except ImportError as exc:
    raise missing_extra("langchain", "langchain-core") from exc

__all__ = ["GroundsearchRetriever"]


class GroundsearchRetriever(BaseRetriever):
    """Search a groundsearch index from LangChain: `Document(page_content=hit.text, id=passage id, metadata=every
    Hit field)`.

    `retriever` is an open `Retriever` or a `RemoteRetriever`; `k` the documents per query; `search_options` any of
    `mode`, `filters`, `highlight`, `nprobe`, `ef_search`, `fusion`, `rerank`, passed to its `search`. Keyword
    arguments to `invoke` (`k=...`, `filters=...`) override them for one call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    k: int = 4
    search_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("k")
    @classmethod
    def _k(cls, k: int) -> int:
        return check_k(k)

    @field_validator("search_options")
    @classmethod
    def _options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return search_options(options)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], k: int = 4, **options: Any) -> GroundsearchRetriever:
        """Open the bundle at `path` in this process."""
        return cls(retriever=open_path(path), k=k, search_options=options)

    @classmethod
    def from_url(cls, url: str, k: int = 4, *, timeout: float = 30.0, **options: Any) -> GroundsearchRetriever:
        """Search through a `groundsearch serve` at `url` (a `RemoteRetriever`)."""
        return cls(retriever=open_url(url, timeout), k=k, search_options=options)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        k = check_k(kwargs.pop("k", self.k))
        options = {**self.search_options, **search_options(kwargs)}
        searcher: Searcher = self.retriever
        return [
            Document(page_content=hit.text, id=document_id(hit), metadata=metadata(hit))
            for hit in searcher.search(query, k=k, **options)
        ]
