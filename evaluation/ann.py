"""ANN recall on the evaluation's own questions: the share of the exact top-10 that the index's search returns.

Retrieval metrics alone cannot tell a weak model from a lossy index. This figure isolates the index: the same
query vectors are searched exactly, over the vectors the index itself stores, and with the index's own
search at its default parameters (the ones the build tuned). It is 1 by definition for `Flat`. For
`IVF*,Flat` and `HNSW*` (flat storage) the stored vectors are the exact ones and are streamed out of the
index, list by list or block by block, without changing it (the index is shared with searches). Lossy codecs
(PQ, SQ, ...) keep no exact vectors: a bundle built with `--rescore` has them beside the index (and its
searches are re-scored from them), any other has nothing honest to compare with and no figure is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from index_build.tuning import RECALL_K, exact_top, recall_at
from retriever.faiss_io import hnsw_of, inner_index, is_exact, ivf_of
from retriever.retriever import Retriever

BLOCK = 65_536  # vectors per exact-search block: a few tens of MB at 384 dimensions


@dataclass(frozen=True)
class AnnRecall:
    """recall@10 of the dense index on `queries` questions, or None with `why` when it cannot be measured."""

    recall: float | None
    queries: int
    search_params: dict[str, Any]
    factory: str
    why: str = ""

    def to_dict(self) -> dict[str, Any] | None:
        """The report's `ann` entry; None (the key left out) when there is no figure."""
        if self.recall is None:
            return None
        return {f"recall@{RECALL_K}": self.recall, "queries": self.queries, "search_params": self.search_params}

    def line(self) -> str:
        """The one line printed under the evaluation table."""
        name = f"ANN recall@{RECALL_K}"
        if self.recall is None:
            return f"{name}: not measured, {self.why}"
        params = ", ".join(f"{k}={v}" for k, v in self.search_params.items())
        if params:
            how = f"{self.factory} searched with {params}" + (f", {self.why}" if self.why else "")
        else:
            how = f"{self.factory}, {self.why or 'default search'}"
        return f"{name} {self.recall:.3f} ({how}; exact top-{RECALL_K} of {self.queries} questions)"


def ann_recall(retriever: Retriever, texts: Sequence[str]) -> AnnRecall:
    """Measure the dense index's recall@10 against exact search, with `texts` as the queries."""
    index = retriever.faiss_index
    manifest = retriever.manifest
    params = dict(manifest.search_params)
    factory = manifest.faiss_factory
    if is_exact(index):
        return AnnRecall(1.0, len(texts), params, factory, "exact search")
    blocks = exact_blocks(index)
    why = ""
    if blocks is None and retriever.exact_vectors is not None:
        # Lossy codes, but the bundle keeps the vectors (--rescore): searches are re-scored from them, and they
        # are what "exact" means for this index.
        blocks, why = retriever.exact_vectors.blocks(BLOCK), "re-scored from the bundle's float16 vectors"
    if blocks is None:
        why = f"{factory} stores lossy codes, so the bundle holds no exact vectors to compare with"
        return AnnRecall(None, len(texts), params, factory, why)
    k = min(RECALL_K, manifest.passages)
    xq = np.ascontiguousarray(retriever.encode(texts), dtype=np.float32)
    found = [[pid for pid, _ in row] for row in retriever.dense_search(xq, k)]
    exact = [[int(p) for p in row if p >= 0] for row in exact_top(xq, blocks, k)]
    return AnnRecall(recall_at(found, exact), len(texts), params, factory, why)


def exact_blocks(index: Any) -> Iterator[tuple[np.ndarray, np.ndarray]] | None:
    """(ids, vectors) blocks of the exact vectors `index` stores, or None where it stores lossy codes."""
    outer = inner_index(index)  # without ID maps; a pre-transform (PCA, OPQ...) changes the vectors: lossy
    if isinstance(outer, faiss.IndexPreTransform):
        return None
    ivf = ivf_of(index)
    if ivf is not None and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat):
        return _ivf_flat_blocks(faiss.downcast_index(ivf), _id_map(index))
    hnsw = hnsw_of(index)
    if hnsw is not None and isinstance(outer, faiss.IndexHNSW):
        storage = faiss.downcast_index(hnsw.storage)
        if isinstance(storage, faiss.IndexFlat):
            return _flat_blocks(storage, _id_map(index))
    return None


def _ivf_flat_blocks(ivf: Any, id_map: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The raw float32 vectors of every inverted list, gathered into blocks of about BLOCK vectors."""
    from faiss.contrib.inspect_tools import get_invlist

    ids: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    held = 0
    for number in range(ivf.nlist):
        list_ids, codes = get_invlist(ivf.invlists, number)
        if not len(list_ids):
            continue
        ids.append(id_map[list_ids] if id_map is not None else list_ids)
        vectors.append(codes.view(np.float32).reshape(len(list_ids), ivf.d))
        held += len(list_ids)
        if held >= BLOCK:
            yield np.concatenate(ids), np.concatenate(vectors)
            ids, vectors, held = [], [], 0
    if held:
        yield np.concatenate(ids), np.concatenate(vectors)


def _flat_blocks(storage: Any, id_map: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for first in range(0, storage.ntotal, BLOCK):
        count = min(BLOCK, storage.ntotal - first)
        local = np.arange(first, first + count, dtype=np.int64)
        yield (id_map[local] if id_map is not None else local), storage.reconstruct_n(first, count)


def _id_map(index: Any) -> np.ndarray | None:
    """The passage id of each stored vector, where an ID map wraps the index (else ids are positions)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        return np.asarray(faiss.vector_to_array(index.id_map), dtype=np.int64)
    return None
