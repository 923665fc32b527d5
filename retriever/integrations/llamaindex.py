"""LlamaIndex: `GroundsearchRetriever`, a `BaseRetriever` whose nodes are verbatim passages with their provenance.

    retriever = GroundsearchRetriever.from_path("wiki.idx", k=4)
    nodes = retriever.retrieve("who wrote the nicomachean ethics")
    nodes[0].node.text, nodes[0].score, nodes[0].node.metadata["permalink"]

Needs `pip install "groundsearch[llamaindex]"` (llama-index-core). `start_char_idx`/`end_char_idx` are the
passage's offsets in its article's cleaned text. An LLM reading a node sees its title, section and permalink
besides the text; the other fields (hashes, offsets, ranks) stay in `metadata`, out of prompts and embeddings.
"""

from __future__ import annotations

import os
from typing import Any

from retriever.hit import Hit
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
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:
    raise missing_extra("llamaindex", "llama-index-core") from exc

__all__ = ["GroundsearchRetriever"]

SHOWN_TO_LLM = ("title", "section", "permalink")


class GroundsearchRetriever(BaseRetriever):
    """Search a groundsearch index from LlamaIndex: `NodeWithScore(TextNode(text, id_=passage id, metadata=every Hit
    field, start_char_idx, end_char_idx), score)`.

    `retriever` is an open `Retriever` or a `RemoteRetriever`; `k` the nodes per query; `options` any of `mode`,
    `filters`, `highlight`, `nprobe`, `ef_search`, `fusion`, `rerank`, passed to its `search`.
    """

    def __init__(
        self,
        retriever: Searcher,
        k: int = 4,
        *,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        **options: Any,
    ) -> None:
        self.retriever = retriever
        self.k = check_k(k)
        self.search_options = search_options(options)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], k: int = 4, **options: Any) -> GroundsearchRetriever:
        """Open the bundle at `path` in this process."""
        return cls(open_path(path), k, **options)

    @classmethod
    def from_url(cls, url: str, k: int = 4, *, timeout: float = 30.0, **options: Any) -> GroundsearchRetriever:
        """Search through a `groundsearch serve` at `url` (a `RemoteRetriever`)."""
        return cls(open_url(url, timeout), k, **options)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.search(query_bundle.query_str, k=self.k, **self.search_options)
        return [NodeWithScore(node=_node(hit), score=hit.score) for hit in hits]


def _node(hit: Hit) -> TextNode:
    fields = metadata(hit)
    return TextNode(
        text=hit.text,
        id_=document_id(hit),
        metadata=fields,
        start_char_idx=hit.start,
        end_char_idx=hit.end,
        excluded_llm_metadata_keys=[name for name in fields if name not in SHOWN_TO_LLM],
        excluded_embed_metadata_keys=list(fields),
    )
