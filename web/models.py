"""The JSON API's response models: what `/docs` shows a client, and the only shapes the API ever returns.

They mirror `retriever.Hit` and the manifest rather than inventing fields, so a client can cite and check a
passage exactly as a library user would: `sha256(text.encode("utf-8")) == sha256`, and `text` is the slice
`[start:end]` of the cleaned article at `revision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from retriever import Hit, SearchResult

P = TypeVar("P", bound="Passage")


class Limits(BaseModel):
    """What one request may ask for. Bounds keep one client from tying up the encoder or the threadpool."""

    model_config = ConfigDict(frozen=True)

    max_query_chars: int = Field(default=500, description="Longest query accepted, in characters.")
    max_k: int = Field(default=100, description="Most passages one search may return.")
    default_k: int = Field(default=10, description="Passages returned when `k` is not given.")


class Passage(BaseModel):
    """A stored passage, verbatim, with everything needed to cite it and check it against its source."""

    passage_id: int = Field(description="Stable id within this index; GET /api/passages/{passage_id} returns it.")
    text: str = Field(description="The passage exactly as stored: sha256(text.encode('utf-8')) == sha256.")
    title: str = Field(description="Title of the article the passage comes from.")
    section: str = Field(description="Section heading within the article; empty for the lead.")
    url: str | None = Field(description="The article's URL at its source.")
    permalink: str | None = Field(description="A link to the exact revision the passage was taken from.")
    revision: str | None = Field(description="The source's revision id of the article.")
    timestamp: str | None = Field(description="When that revision was saved, as the source reports it.")
    document_id: int = Field(description="Id of the article within this index.")
    source_id: str = Field(description="The article's id at its source (e.g. the MediaWiki page id).")
    start: int = Field(description="Offset of the first character in the article's cleaned text.")
    end: int = Field(description="Offset one past the last character in the article's cleaned text.")
    sha256: str = Field(description="SHA-256 of the UTF-8 text, hex.")
    page_kind: Literal["disambiguation", "list"] | None = Field(
        default=None,
        description="Set when the passage comes from a navigation page (a disambiguation page or a list-only page), "
        "whose lines point to other articles rather than state facts; null for an article.",
    )
    citation: str = Field(description="One line to print under an answer: title, permalink, passage id, offsets.")

    @classmethod
    def from_hit(cls: type[P], hit: Hit) -> P:
        fields = {name: getattr(hit, name) for name in cls.model_fields if name != "citation"}
        return cls(**fields, citation=hit.citation())


class FoundBy(BaseModel):
    """Where one retriever ranked a hit."""

    retriever: Literal["dense", "lexical"] = Field(description="dense: embedding similarity; lexical: BM25.")
    rank: int = Field(description="1-based rank in that retriever's own list.")
    score: float = Field(description="That retriever's score: cosine similarity (dense) or BM25 (lexical).")


class Highlight(BaseModel):
    """Where in `text` the part that best answers the query lies: the client emphasises, never rewrites.

    Offsets count Unicode code points, as Python indexes strings; JavaScript's `slice` counts UTF-16 units, so
    a browser client should slice `Array.from(text)` where the text may hold characters beyond U+FFFF.
    """

    start: int = Field(description="Offset in `text` of the highlight's first character.")
    end: int = Field(description="Offset in `text` one past its last character: `text[start:end]` is the span.")


class SearchHit(Passage):
    """A passage found by a search, with its place in the ranking and which retrievers found it."""

    rank: int = Field(description="1 for the best match.")
    score: float = Field(
        description="Higher is closer: cosine similarity in dense mode, BM25 in lexical mode, the fused score "
        "(in [0, 1]) in hybrid mode."
    )
    found_by: list[FoundBy] = Field(description="Each retriever that returned this passage, with its rank there.")
    highlight: Highlight | None = Field(
        description="The sentence (or clause) of `text` that best answers the query, as offsets into `text` "
        "(`text[start:end]`); null for a passage with no words."
    )
    confidence: float | None = Field(
        default=None,
        description="Calibrated probability, in [0, 1], that this passage answers the query; null where the index "
        "has no calibration for its model.",
    )
    weak: bool = Field(default=False, description="Whether `confidence` is below the search's `min_confidence`.")

    @classmethod
    def from_hit(cls, hit: Hit, weak: bool = False) -> SearchHit:
        if hit.score is None:
            raise ValueError(f"passage {hit.passage_id} was fetched by id, not found by a search: it has no score")
        fields = {name: getattr(hit, name) for name in Passage.model_fields if name != "citation"}
        found = [FoundBy(retriever=f.retriever, rank=f.rank, score=f.score) for f in hit.found_by]  # type: ignore[arg-type]
        span = Highlight(start=hit.highlight.start, end=hit.highlight.end) if hit.highlight else None
        return cls(
            **fields,
            citation=hit.citation(),
            rank=hit.rank,
            score=hit.score,
            found_by=found,
            highlight=span,
            confidence=hit.confidence,
            weak=weak,
        )


class SearchResponse(BaseModel):
    query: str = Field(description="The query as received.")
    mode: str = Field(description="The search mode used: dense, lexical or hybrid.")
    k: int = Field(description="Passages asked for; fewer come back only if the index holds fewer.")
    nprobe: int | None = Field(description="IVF lists visited, as asked; null means the index's default.")
    ef_search: int | None = Field(description="HNSW candidate list length, as asked; null means the index's default.")
    reranked: bool = Field(description="Whether the server's cross-encoder reordered the hits.")
    answerable: bool | None = Field(
        default=None,
        description="Whether the best hit's confidence reaches `min_confidence`: false means no passage in this "
        "corpus matches well (the hits are still listed, marked weak); null where the index has no calibration.",
    )
    confidence: float | None = Field(default=None, description="The best hit's confidence.")
    min_confidence: float | None = Field(
        default=None, description="The bar a best hit had to reach: as asked, or the index's calibrated default."
    )
    hits: list[SearchHit]

    @classmethod
    def from_result(cls, result: SearchResult, **request: Any) -> SearchResponse:
        return cls(
            query=result.query,
            answerable=result.answerable,
            confidence=result.confidence,
            min_confidence=result.min_confidence,
            hits=[SearchHit.from_hit(h, weak=result.is_weak(h)) for h in result.hits],
            **request,
        )


class ModelSummary(BaseModel):
    name: str
    dimension: int
    weights_sha256: str


class SourceSummary(BaseModel):
    name: str = Field(description="File name of a corpus file the index was built from (no server path).")
    format: str
    size: int
    sha256: str


class InfoResponse(BaseModel):
    """The manifest summary: what was indexed, with which model, when, and the limits this server applies."""

    index: str = Field(description="Name of the index directory.")
    model: ModelSummary
    documents: int
    passages: int
    faiss_factory: str
    metric: str
    search_params: dict[str, Any]
    modes: list[str] = Field(description="Search modes this index supports; the first is the default.")
    created_at: str = Field(description="When the index was built (ISO 8601, UTC).")
    package_version: str = Field(description="The groundsearch version that built it.")
    total_bytes: int
    bytes_per_passage: float | None
    sources: list[SourceSummary]
    limits: Limits

    @classmethod
    def from_bundle_info(cls, details: dict[str, Any], modes: Sequence[str], limits: Limits) -> InfoResponse:
        m = details["manifest"]
        return cls(
            index=PurePath(details["path"]).name,
            model=ModelSummary(**m["model"]),
            documents=m["documents"],
            passages=m["passages"],
            faiss_factory=m["faiss_factory"],
            metric=m["metric"],
            search_params=m["search_params"],
            modes=list(modes),
            created_at=m["created_at"],
            package_version=m["package_version"],
            total_bytes=details["total_bytes"],
            bytes_per_passage=details["bytes_per_passage"],
            # Only file names: where the corpus lay on the build machine is not the clients' business.
            sources=[
                SourceSummary(name=PurePath(s["path"]).name, format=s["format"], size=s["size"], sha256=s["sha256"])
                for s in m["sources"]
            ],
            limits=limits,
        )


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    passages: int


class ErrorResponse(BaseModel):
    detail: str = Field(description="One line saying what went wrong.")


class SearchFilter(BaseModel):
    """Documents a search may return passages from: any value of a field matches, given fields must all match."""

    model_config = ConfigDict(extra="forbid")

    documents: list[Annotated[int, Field(ge=0)]] = Field(
        default=[], description="Document ids in the index (`document_id` of a hit)."
    )
    titles: list[str] = Field(default=[], description="Exact article titles (`title` of a hit).")
    sources: list[str] = Field(default=[], description="Corpus file names, as /api/info lists them in `sources`.")


class BatchSearchRequest(BaseModel):
    """Many queries searched in one call: one encoder pass and one FAISS search for all of them."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str] = Field(min_length=1, description="What to search for, one string per query.")
    k: int | None = Field(default=None, ge=1, description="Passages per query; default: the server's.")
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(default=None, description="As for /api/search.")
    nprobe: int | None = Field(default=None, ge=1, description="As for /api/search.")
    ef_search: int | None = Field(default=None, ge=1, description="As for /api/search.")
    highlight: bool = Field(default=True, description="As for /api/search.")
    rerank: bool | None = Field(default=None, description="As for /api/search.")
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0, description="As for /api/search.")
    filters: SearchFilter | None = Field(default=None, description="Restrict every query to these documents.")


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse] = Field(description="One response per query, in the order of `queries`.")
