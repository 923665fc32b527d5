"""Query time: open a bundle, embed queries, search FAISS, return stored passages verbatim."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from retriever.bundle import FAISS_NAME, STORE_NAME, Manifest, read_manifest
from retriever.confidence import Calibration, Evidence, best_confidence, evidence_of
from retriever.errors import IndexCorrupt, InvalidQuery, PassageNotFound
from retriever.faiss_io import read_faiss
from retriever.filters import Filter, Runs, Selections, faiss_selector, run_count
from retriever.fusion import DEFAULT_FUSION, Fused, Fusion, fuse
from retriever.highlight import Highlighter
from retriever.hit import Context, Found, Hit, SearchResult, Span
from retriever.lexical import LexicalIndex
from retriever.query import clean_query
from retriever.query_encoder import QueryEncoder, open_query_encoder
from retriever.rerank import Reranker
from retriever.rescore import ExactVectors
from retriever.search_params import restricted, search_params
from retriever.store import PassageStore, StoredPassage

MODES = ("dense", "lexical", "hybrid")


class Retriever:
    """Search one index bundle. Open it once and share it: every method is safe to call from many threads."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        index: Any,
        store: PassageStore,
        encoder: QueryEncoder,
        lexical: LexicalIndex | None = None,
        exact: ExactVectors | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._index = index
        self._store = store
        self._encoder = encoder
        self._lexical = lexical
        self._exact = exact  # re-scores the dense side's candidates (bundles built with --rescore)
        # Public so that a caller can choose another scorer: Highlighter(encoder, lexical, "embedding").
        self.highlighter = Highlighter(encoder, lexical)
        # None when the bundle's model has no fitted confidence model: hits then carry no confidence.
        self.calibration = Calibration.from_dict(manifest.confidence) if manifest.confidence else None
        self._selections = Selections(store)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        device: str | None = None,
        model: str | None = None,
        encoder: str = "auto",
    ) -> Retriever:
        """Open a bundle; `model` overrides the manifest's model name (e.g. the same weights in another folder).

        `encoder` chooses how queries are embedded: "onnx", the bundle's own graph through onnxruntime (no torch
        is imported); "torch", the sentence-transformers model; "auto", ONNX where the bundle has it and neither
        a `model` nor a non-CPU `device` asks for the model itself. Whatever model is loaded must have the
        weights the index was built with, or this raises ModelMismatch; an altered ONNX file raises IndexCorrupt.
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
        query_encoder = open_query_encoder(bundle, manifest, encoder, device, model)
        lexical = LexicalIndex(bundle / manifest.lexical["directory"]) if manifest.lexical else None
        if lexical is not None and len(lexical) != manifest.passages:
            raise IndexCorrupt(
                f"{bundle}: the lexical index holds {len(lexical)} passages, the manifest says {manifest.passages}; "
                "rebuild the index"
            )
        exact = None
        if "vectors" in manifest.files:
            exact = ExactVectors(bundle / manifest.files["vectors"].name, manifest.passages, manifest.model.dimension)
        return cls(bundle, manifest, index, store, query_encoder, lexical, exact)

    def __len__(self) -> int:
        return self.manifest.passages

    @property
    def modes(self) -> tuple[str, ...]:
        """The search modes this index supports; an index built without a lexical index only has "dense"."""
        return MODES if self._lexical is not None else ("dense",)

    @property
    def default_mode(self) -> str:
        return "hybrid" if self._lexical is not None else "dense"

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: str | None = None,
        nprobe: int | None = None,
        fusion: Fusion | None = None,
        ef_search: int | None = None,
        highlight: bool = True,
        rerank: Reranker | None = None,
        filters: Filter | Mapping[str, Any] | None = None,
        confidence: bool = True,
    ) -> list[Hit]:
        """The k passages that best match `query`, best first. See `search_batch`."""
        return self.search_batch(
            [query],
            k=k,
            mode=mode,
            nprobe=nprobe,
            fusion=fusion,
            ef_search=ef_search,
            highlight=highlight,
            rerank=rerank,
            filters=filters,
            confidence=confidence,
        )[0]

    def search_with_status(
        self, query: str, k: int = 10, *, min_confidence: float | None = None, **options: Any
    ) -> SearchResult:
        """`search`, and whether the corpus has a good match at all: see `search_batch_with_status`."""
        return self.search_batch_with_status([query], k, min_confidence=min_confidence, **options)[0]

    def search_batch_with_status(
        self, queries: Sequence[str], k: int = 10, *, min_confidence: float | None = None, **options: Any
    ) -> list[SearchResult]:
        """`search_batch`, each query's hits in a `SearchResult` that says whether its best hit is a match.

        `min_confidence` is the bar a best hit must reach for `answerable`; None is the calibration's own
        threshold for the mode, chosen by measurement (README, "Match confidence"). On an index without a calibration,
        `answerable` is None: there is nothing to judge by. `options` are `search_batch`'s.
        """
        if min_confidence is not None and (
            isinstance(min_confidence, bool)
            or not isinstance(min_confidence, (int, float))
            or not 0 <= min_confidence <= 1
        ):
            raise InvalidQuery(f"min_confidence must be a number in [0, 1], got {min_confidence!r}")
        rows = self.search_batch(queries, k, confidence=True, **options)
        bar = None
        if self.calibration is not None:
            mode_bar = self.calibration.threshold(self._check_mode(options.get("mode")))
            bar = float(min_confidence) if min_confidence is not None else mode_bar
        results = []
        for query, hits in zip(queries, rows, strict=True):
            best = best_confidence([hit.confidence for hit in hits])
            if bar is None:
                answerable = None  # uncalibrated: nothing to judge by
            else:
                answerable = best is not None and best >= bar
            results.append(SearchResult(query, hits, answerable, best, bar))
        return results

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        mode: str | None = None,
        nprobe: int | None = None,
        fusion: Fusion | None = None,
        ef_search: int | None = None,
        highlight: bool = True,
        rerank: Reranker | None = None,
        filters: Filter | Mapping[str, Any] | None = None,
        confidence: bool = True,
    ) -> list[list[Hit]]:
        """Search many queries at once: one encode call and one FAISS call for all of them.

        `mode` is "dense" (embedding similarity), "lexical" (BM25) or "hybrid" (both, fused by `fusion`);
        None means the index's default, hybrid where the index has a lexical side. `nprobe` (IVF) and
        `ef_search` (HNSW) apply to the dense side of approximate indexes; None is the value the build tuned.
        k above the number of passages returns every passage. Each returned hit carries its `highlight`
        (chosen by `self.highlighter`, for the k hits only); `highlight=False` skips that work. With a
        `rerank` cross-encoder, the first stage's top `rerank.depth` are reordered by it and the best k kept.
        `filters` (a `Filter`, or a mapping such as `{"title": ["Paris"]}`) restricts every side of the search to
        those documents' passages; one that matches no document raises `FilterMatchesNothing`.
        Each hit carries its `confidence` (`retriever.confidence`) where the index has a calibration;
        `confidence=False` skips that work.
        """
        hits, evidence = self._search(
            queries,
            k,
            mode,
            nprobe,
            fusion,
            ef_search,
            highlight,
            rerank,
            filters,
            with_evidence=confidence and self.calibration is not None,
        )
        if evidence is None:
            return hits
        assert self.calibration is not None
        calibration, used = self.calibration, self._check_mode(mode)
        return [
            [replace(hit, confidence=calibration.confidence(used, ev)) for hit, ev in zip(row, row_ev, strict=True)]
            for row, row_ev in zip(hits, evidence, strict=True)
        ]

    def search_evidence(
        self, queries: Sequence[str], k: int = 10, *, mode: str | None = None, **options: Any
    ) -> list[list[tuple[Hit, Evidence]]]:
        """Each query's hits with the evidence their confidence is computed from: what a calibration is fitted
        on (bench/calibrate.py). `options` are `search_batch`'s."""
        hits, evidence = self._search(
            queries,
            k,
            mode,
            options.get("nprobe"),
            options.get("fusion"),
            options.get("ef_search"),
            options.get("highlight", False),
            options.get("rerank"),
            options.get("filters"),
            with_evidence=True,
        )
        assert evidence is not None
        return [list(zip(row, row_ev, strict=True)) for row, row_ev in zip(hits, evidence, strict=True)]

    def _search(
        self,
        queries: Sequence[str],
        k: int,
        mode: str | None,
        nprobe: int | None,
        fusion: Fusion | None,
        ef_search: int | None,
        highlight: bool,
        rerank: Reranker | None,
        filters: Filter | Mapping[str, Any] | None,
        *,
        with_evidence: bool,
    ) -> tuple[list[list[Hit]], list[list[Evidence]] | None]:
        if isinstance(queries, str):
            raise InvalidQuery("search_batch takes a list of queries; use search() for one")
        for query in queries:
            if not isinstance(query, str):
                raise InvalidQuery(f"a query must be a string, got {type(query).__name__}")
        # Both sides see the same text: bounded, and without lone surrogates (which JSON can carry but no
        # tokenizer accepts).
        queries = [clean_query(query) for query in queries]
        if any(not query.strip() for query in queries):
            raise InvalidQuery("empty query: give some words to search for")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidQuery(f"k must be a whole number >= 1, got {k!r}")
        mode = self._check_mode(mode)
        chosen = Filter.of(filters)
        if not queries:
            return [], [] if with_evidence else None
        runs = self._selections.runs(chosen) if chosen is not None else None
        k = min(k, self.manifest.passages)
        first_k = min(max(k, rerank.depth), self.manifest.passages) if rerank is not None else k
        fusion = fusion or DEFAULT_FUSION
        depth = max(first_k, fusion.depth) if mode == "hybrid" else first_k
        dense = self.dense_candidates(queries, depth, nprobe, ef_search, runs) if mode != "lexical" else None
        lexical = self.lexical_candidates(queries, depth, runs) if mode != "dense" else None
        rankings: list[list[Fused]] = []
        for i in range(len(queries)):
            if dense is not None and lexical is not None:
                rankings.append(fuse(dense[i], lexical[i], fusion)[:first_k])
            elif dense is not None:
                rankings.append([Fused(pid, score, (r, score), None) for r, (pid, score) in enumerate(dense[i], 1)])
            else:
                assert lexical is not None
                rankings.append([Fused(pid, score, None, (r, score)) for r, (pid, score) in enumerate(lexical[i], 1)])
        if rerank is None:
            # The hits shown are known now: their highlights go into each Hit as it is made.
            hits = self._hits(rankings, queries if highlight else None)
        else:
            hits = self._hits(rankings)
            template = self.manifest.text_template
            hits = [rerank.rerank(query, row, template)[:k] for query, row in zip(queries, hits, strict=True)]
            hits = self.highlighted(queries, hits) if highlight else hits
        if not with_evidence:
            return hits, None
        return hits, [
            self._evidence(
                query, row, dense[i] if dense is not None else None, lexical[i] if lexical is not None else None
            )
            for i, (query, row) in enumerate(zip(queries, hits, strict=True))
        ]

    def _evidence(
        self,
        query: str,
        hits: list[Hit],
        dense: list[tuple[int, float]] | None,
        lexical: list[tuple[int, float]] | None,
    ) -> list[Evidence]:
        """Each hit's evidence; a side's score for a hit it did not return is the lowest that side returned."""
        weights = self.highlighter.query_weights(query)
        dense_floor = (dense[-1][1] if dense else 0.0) if dense is not None else None
        lexical_floor = (lexical[-1][1] if lexical else 0.0) if lexical is not None else None
        out = []
        for hit in hits:
            at = {found.retriever: found.score for found in hit.found_by}
            out.append(
                evidence_of(
                    weights,
                    self.highlighter.passage_terms(hit.text),
                    at.get("dense", dense_floor) if dense is not None else None,
                    at.get("lexical", lexical_floor) if lexical is not None else None,
                )
            )
        return out

    def highlighted(self, queries: Sequence[str], hits: list[list[Hit]]) -> list[list[Hit]]:
        """`hits[i]` with their highlights for `queries[i]`: for hits searched with `highlight=False` and then
        cut or reordered (e.g. reranked), so that only the hits finally shown pay for it."""
        spans = self.highlighter.highlight_batch(queries, [[hit.text for hit in row] for row in hits])
        return [
            [replace(hit, highlight=span) for hit, span in zip(row, row_spans, strict=True)]
            for row, row_spans in zip(hits, spans, strict=True)
        ]

    def dense_candidates(
        self,
        queries: Sequence[str],
        depth: int,
        nprobe: int | None = None,
        ef_search: int | None = None,
        runs: Runs | None = None,
    ) -> list[list[tuple[int, float]]]:
        """(passage id, cosine similarity) of the `depth` nearest passages per query, from FAISS alone; only
        passages whose ids lie in `runs` (half-open ranges) where given."""
        return self.dense_search(self.encode(queries), depth, nprobe, ef_search, runs)

    def encode(self, queries: Sequence[str]) -> Any:
        """The query vectors dense search uses (float32, unit length), for callers that measure the index."""
        return self._encoder.encode(list(queries), batch_size=64)

    @property
    def encoder(self) -> QueryEncoder:
        """What embeds the queries: `OnnxEncoder` (no torch) or the sentence-transformers `Encoder`."""
        return self._encoder

    @property
    def exact_vectors(self) -> ExactVectors | None:
        """The bundle's float16 vectors (`build --rescore`), which re-score the dense side; None without them."""
        return self._exact

    @property
    def faiss_index(self) -> Any:
        """The FAISS index, shared by every search: read from it, never change it (use per-call parameters)."""
        return self._index

    def dense_search(
        self,
        vectors: Any,
        depth: int,
        nprobe: int | None = None,
        ef_search: int | None = None,
        runs: Runs | None = None,
    ) -> list[list[tuple[int, float]]]:
        """`dense_candidates` for vectors already encoded (`encode`); re-scored exactly where the bundle can."""
        params = search_params(self._index, self.manifest.search_params, nprobe, ef_search)
        selector = None
        if runs is not None:
            selector = faiss_selector(runs)  # kept alive here: the parameters hold only a pointer to it
            params = restricted(self._index, params, selector, run_count(runs) / max(1, self.manifest.passages))
        asked = max(depth, self._exact.depth) if self._exact is not None else depth
        scores, ids = self._index.search(vectors, min(asked, self.manifest.passages), params=params)
        # FAISS pads with -1 when fewer than `depth` vectors are reachable.
        rows = [
            [(int(pid), float(score)) for score, pid in zip(row_scores, row_ids, strict=True) if pid >= 0]
            for row_scores, row_ids in zip(scores, ids, strict=True)
        ]
        return self._exact.rescore(vectors, rows, depth) if self._exact is not None else rows

    def lexical_candidates(
        self, queries: Sequence[str], depth: int, runs: Runs | None = None
    ) -> list[list[tuple[int, float]]]:
        """(passage id, BM25 score) of the `depth` best passages per query, from the lexical index alone; only
        passages whose ids lie in `runs` (half-open ranges) where given."""
        if self._lexical is None:
            raise InvalidQuery(f"{self.path} has no lexical index; rebuild it to search in lexical or hybrid mode")
        return self._lexical.search_batch(queries, depth, runs)

    def _check_mode(self, mode: str | None) -> str:
        if mode is None:
            return self.default_mode
        if mode not in MODES:
            raise InvalidQuery(f"unknown search mode {mode!r}; the modes are {', '.join(MODES)}")
        if mode not in self.modes:
            raise InvalidQuery(f"{self.path} has no lexical index, so only dense search; rebuild it for {mode!r}")
        return mode

    def _hits(self, rankings: list[list[Fused]], highlight_for: Sequence[str] | None = None) -> list[list[Hit]]:
        """The stored passages of `rankings`, as hits; highlighted for `highlight_for[i]` when given."""
        ids = {f.passage_id for ranking in rankings for f in ranking}
        passages = self._store.fetch(sorted(ids))
        missing = ids - passages.keys()
        if missing:
            raise IndexCorrupt(f"{self.path}: passage {min(missing)} is in the index but not in the store")
        if highlight_for is not None:
            texts = [[passages[f.passage_id].text for f in ranking] for ranking in rankings]
            spans = self.highlighter.highlight_batch(highlight_for, texts)
        else:
            spans = [[None] * len(ranking) for ranking in rankings]
        results: list[list[Hit]] = []
        for ranking, row_spans in zip(rankings, spans, strict=True):
            hits: list[Hit] = []
            for rank, (fused, span) in enumerate(zip(ranking, row_spans, strict=True), start=1):
                found = tuple(
                    Found(name, *at) for name, at in (("dense", fused.dense), ("lexical", fused.lexical)) if at
                )
                hits.append(_hit(passages[fused.passage_id], rank=rank, score=fused.score, found_by=found, span=span))
            results.append(hits)
        return results

    def get(self, passage_id: int) -> Hit:
        """The passage with this id, exactly as stored."""
        stored = self._store.fetch([passage_id]).get(int(passage_id))
        if stored is None:
            raise PassageNotFound(f"no passage with id {passage_id} (ids run from 0 to {len(self) - 1})")
        return _hit(stored, rank=0, score=None)

    def context(self, passage_id: int, before: int = 2, after: int = 2) -> Context:
        """The passage with this id and up to `before` and `after` of its neighbours in the same section, to read
        it in place; with the ids of the passages either side of it in its document (see `Context`)."""
        for name, value in (("before", before), ("after", after)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidQuery(f"{name} must be a whole number >= 0, got {value!r}")
        # One place further each way than asked, for the previous and next ids.
        rows = self._store.around(passage_id, before + 1, after + 1)
        at = next((i for i, row in enumerate(rows) if row.passage_id == int(passage_id)), None)
        if at is None:
            raise PassageNotFound(f"no passage with id {passage_id} (ids run from 0 to {len(self) - 1})")
        here = rows[at]
        ahead = rows[max(0, at - before) : at]
        past = rows[at + 1 : at + 1 + after]
        # Only the unbroken run of the passage's own section: a section's passages are consecutive.
        while ahead and any(row.section != here.section for row in ahead):
            ahead.pop(0)
        while past and any(row.section != here.section for row in past):
            past.pop()
        return Context(
            passage=_hit(here, rank=0, score=None),
            before=tuple(_hit(row, rank=0, score=None) for row in ahead),
            after=tuple(_hit(row, rank=0, score=None) for row in past),
            previous=rows[at - 1].passage_id if at > 0 else None,
            next=rows[at + 1].passage_id if at + 1 < len(rows) else None,
        )


def _hit(
    stored: StoredPassage, rank: int, score: float | None, found_by: tuple[Found, ...] = (), span: Span | None = None
) -> Hit:
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
        found_by=found_by,
        highlight=span,
        page_kind=stored.kind,
    )
