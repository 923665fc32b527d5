"""Query time: open a bundle, embed queries, search FAISS, return stored passages verbatim."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss

from retriever.bundle import FAISS_NAME, STORE_NAME, Manifest, read_manifest
from retriever.errors import IndexCorrupt, InvalidQuery, PassageNotFound
from retriever.faiss_io import ivf_of, read_faiss
from retriever.hit import Hit
from retriever.model import Encoder
from retriever.store import PassageStore, StoredPassage


class Retriever:
    """Search one index bundle. Open it once and share it: every method is safe to call from many threads."""

    def __init__(self, path: Path, manifest: Manifest, index: Any, store: PassageStore, encoder: Encoder) -> None:
        self.path = path
        self.manifest = manifest
        self._index = index
        self._store = store
        self._encoder = encoder

    @classmethod
    def open(cls, path: str | os.PathLike[str], device: str | None = None, model: str | None = None) -> Retriever:
        """Open a bundle; `model` overrides the manifest's model name (e.g. the same weights in another folder).

        Whatever model is loaded must have the weights the index was built with, or this raises ModelMismatch.
        """
        bundle = Path(path)
        manifest = read_manifest(bundle)
        store = PassageStore(bundle / STORE_NAME)
        index = read_faiss(bundle / FAISS_NAME)
        if index.ntotal != manifest.passages or index.d != manifest.model.dimension:
            raise IndexCorrupt(
                f"{bundle}: {FAISS_NAME} holds {index.ntotal} vectors of dimension {index.d}, the manifest says "
                f"{manifest.passages} of dimension {manifest.model.dimension}; rebuild the index"
            )
        encoder = Encoder(model or manifest.model.name, device=device)
        encoder.check_matches(manifest.model.weights_sha256, manifest.model.dimension, manifest.model.name)
        return cls(bundle, manifest, index, store, encoder)

    def __len__(self) -> int:
        return self.manifest.passages

    def search(self, query: str, k: int = 10, nprobe: int | None = None) -> list[Hit]:
        return self.search_batch([query], k=k, nprobe=nprobe)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, nprobe: int | None = None) -> list[list[Hit]]:
        """Search many queries at once: one encode call and one FAISS call for all of them.

        k above the number of passages returns every passage.
        """
        if isinstance(queries, str):
            raise InvalidQuery("search_batch takes a list of queries; use search() for one")
        for query in queries:
            if not isinstance(query, str) or not query.strip():
                raise InvalidQuery("empty query: give some words to search for")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidQuery(f"k must be a whole number >= 1, got {k!r}")
        if not queries:
            return []
        k = min(k, self.manifest.passages)
        vectors = self._encoder.encode(list(queries), batch_size=64)
        scores, ids = self._index.search(vectors, k, params=self._search_params(nprobe))
        passages = self._store.fetch([int(i) for i in ids.ravel() if i >= 0])
        results: list[list[Hit]] = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits: list[Hit] = []
            for score, pid in zip(row_scores, row_ids, strict=True):
                if pid < 0:  # FAISS pads with -1 when fewer than k vectors are reachable
                    continue
                stored = passages.get(int(pid))
                if stored is None:
                    raise IndexCorrupt(f"{self.path}: passage {int(pid)} is in the index but not in the store")
                hits.append(_hit(stored, rank=len(hits) + 1, score=float(score)))
            results.append(hits)
        return results

    def get(self, passage_id: int) -> Hit:
        """The passage with this id, exactly as stored."""
        stored = self._store.fetch([passage_id]).get(int(passage_id))
        if stored is None:
            raise PassageNotFound(f"no passage with id {passage_id} (ids run from 0 to {len(self) - 1})")
        return _hit(stored, rank=0, score=None)

    def _search_params(self, nprobe: int | None) -> Any:
        # Per-call parameter objects, not ParameterSpace, which would mutate the index shared by all threads.
        ivf = ivf_of(self._index)
        if ivf is None:
            return None
        default = int(self.manifest.search_params.get("nprobe", 1))
        chosen = default if nprobe is None else nprobe
        if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
            raise InvalidQuery(f"nprobe must be a whole number >= 1, got {nprobe!r}")
        return faiss.SearchParametersIVF(nprobe=min(chosen, ivf.nlist))  # type: ignore[call-arg]


def _hit(stored: StoredPassage, rank: int, score: float | None) -> Hit:
    return Hit(
        passage_id=stored.passage_id,
        rank=rank,
        score=score,
        text=stored.text,
        title=stored.title,
        section=stored.section,
        url=stored.url,
        document_id=stored.document_id,
        source_id=stored.source_id,
        revision=stored.revision,
        timestamp=stored.timestamp,
        start=stored.start,
        end=stored.end,
        sha256=stored.sha256,
    )
