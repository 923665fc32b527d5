"""The JSON API: search, passage by id, info, health. Each route validates, calls `Retriever`, and converts.

Search routes are `async` and await the search on the server's search thread (web.searches: why one thread), so
a search never blocks the event loop; the other routes are plain `def`s that FastAPI runs in its thread pool.
`Retriever` is safe to share between threads.

No `from __future__ import annotations` here: the parameter annotations refer to `limits`, a local of
`api_router`, and FastAPI must evaluate them when the route is defined, not later as strings.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from retriever import Filter, Reranker, Retriever
from web.models import (
    BatchSearchRequest,
    BatchSearchResponse,
    ErrorResponse,
    Health,
    InfoResponse,
    Limits,
    Passage,
    SearchResponse,
)
from web.searches import searches

# SQLite integers are signed 64-bit: a larger id could never exist, and would overflow the driver.
MAX_PASSAGE_ID = 2**63 - 1
# Most queries one /api/search/batch request may hold: each costs what one /api/search does.
MAX_BATCH = 64


async def get_retriever(request: Request) -> Retriever:
    # async: a sync dependency would cost every request an extra trip through the threadpool.
    retriever: Retriever = request.app.state.retriever
    return retriever


RetrieverDep = Annotated[Retriever, Depends(get_retriever)]


def get_reranker(request: Request, wanted: bool | None) -> Reranker | None:
    """The server's reranker unless the request turns it off; asking for one the server lacks is a 422."""
    reranker: Reranker | None = request.app.state.reranker
    if wanted and reranker is None:
        raise RequestValidationError(
            [
                {
                    "type": "rerank_unavailable",
                    "loc": ("query", "rerank"),
                    "msg": "this server has no reranker (start it with `groundsearch serve --rerank MODEL`)",
                    "input": wanted,
                }
            ]
        )
    return reranker if wanted is not False else None


def require_words(query: str, parameter: str = "q") -> None:
    """Refuse a blank query with the same 422 shape FastAPI uses for every other bad parameter."""
    if not query.strip():
        raise RequestValidationError(
            [
                {
                    "type": "string_blank",
                    "loc": ("query", parameter),
                    "msg": "empty query: give some words to search for",
                    "input": query,
                }
            ]
        )


def refuse(loc: tuple[str | int, ...], kind: str, msg: str, given: Any) -> None:
    """A 422 in FastAPI's own shape, for a check that depends on the server's limits."""
    raise RequestValidationError([{"type": kind, "loc": loc, "msg": msg, "input": given}])


def api_router(limits: Limits) -> APIRouter:
    """The `/api` routes, with `limits` written into their parameter checks (and so into the OpenAPI document)."""
    router = APIRouter(prefix="/api", tags=["api"])

    @router.get("/search", summary="Search the corpus")
    async def search(
        request: Request,
        retriever: RetrieverDep,
        q: Annotated[str, Query(min_length=1, max_length=limits.max_query_chars, description="What to search for.")],
        k: Annotated[int, Query(ge=1, le=limits.max_k, description="How many passages to return.")] = limits.default_k,
        nprobe: Annotated[
            int | None,
            Query(ge=1, description="IVF lists to visit (approximate indexes only); default: the index's own."),
        ] = None,
        mode: Annotated[
            Literal["dense", "lexical", "hybrid"] | None,
            Query(description="dense (embeddings), lexical (BM25) or hybrid (both); default: the index's own."),
        ] = None,
        ef_search: Annotated[
            int | None,
            Query(ge=1, description="HNSW candidate list length (HNSW indexes only); default: the index's own."),
        ] = None,
        highlight: Annotated[
            bool, Query(description="Mark the sentence of each passage that best answers `q`.")
        ] = True,
        rerank: Annotated[
            bool | None,
            Query(
                description="Reorder with the server's cross-encoder (`serve --rerank`); default: on where the "
                "server has one. true on a server without one is an error."
            ),
        ] = None,
        min_confidence: Annotated[
            float | None,
            Query(
                ge=0.0,
                le=1.0,
                description="The confidence the best hit needs for `answerable`; default: the index's calibrated bar.",
            ),
        ] = None,
        title: Annotated[
            list[str] | None, Query(description="Only passages of articles with this exact title (repeatable).")
        ] = None,
        document: Annotated[
            list[Annotated[int, Field(ge=0, le=MAX_PASSAGE_ID)]] | None,
            Query(description="Only passages of this document id (repeatable)."),
        ] = None,
        source: Annotated[
            list[str] | None, Query(description="Only passages from this corpus file, as /api/info names it.")
        ] = None,
    ) -> SearchResponse:
        """The `k` passages that best match `q`, best first, each verbatim with its provenance, and whether any
        of them matches well (`answerable`).

        `title`, `document` and `source` restrict the search to some documents: any value of one parameter
        matches, and the parameters given must all match. A filter that matches no document is a 422.
        """
        require_words(q)
        reranker = get_reranker(request, rerank)
        filters = Filter(documents=tuple(document or ()), titles=tuple(title or ()), sources=tuple(source or ()))
        result = await searches(request).run(
            retriever.search_with_status,
            q,
            k=k,
            min_confidence=min_confidence,
            mode=mode,
            nprobe=nprobe,
            ef_search=ef_search,
            highlight=highlight,
            rerank=reranker,
            filters=filters,
        )
        return SearchResponse.from_result(
            result,
            mode=mode or retriever.default_mode,
            k=k,
            nprobe=nprobe,
            ef_search=ef_search,
            reranked=reranker is not None,
        )

    @router.post("/search/batch", summary="Search many queries at once")
    async def search_batch(request: Request, retriever: RetrieverDep, body: BatchSearchRequest) -> BatchSearchResponse:
        """`/api/search` for each of `queries`, in one call: one encoder pass and one FAISS search for all.

        A POST only because a list of queries fits a body better than a URL; it writes nothing, and may be
        repeated. At most 64 queries, each within the server's query length.
        """
        if len(body.queries) > MAX_BATCH:
            refuse(("body", "queries"), "too_long", f"at most {MAX_BATCH} queries per request", len(body.queries))
        for i, q in enumerate(body.queries):
            if len(q) > limits.max_query_chars:
                refuse(("body", "queries", i), "string_too_long", f"at most {limits.max_query_chars} characters", q)
            if not q.strip():
                refuse(("body", "queries", i), "string_blank", "empty query: give some words to search for", q)
        k = limits.default_k if body.k is None else body.k
        if k > limits.max_k:
            refuse(("body", "k"), "less_than_equal", f"Input should be less than or equal to {limits.max_k}", k)
        reranker = get_reranker(request, body.rerank)
        filters = Filter(**body.filters.model_dump()) if body.filters is not None else None
        results = await searches(request).run(
            retriever.search_batch_with_status,
            body.queries,
            k=k,
            min_confidence=body.min_confidence,
            mode=body.mode,
            nprobe=body.nprobe,
            ef_search=body.ef_search,
            highlight=body.highlight,
            rerank=reranker,
            filters=filters,
        )
        return BatchSearchResponse(
            results=[
                SearchResponse.from_result(
                    result,
                    mode=body.mode or retriever.default_mode,
                    k=k,
                    nprobe=body.nprobe,
                    ef_search=body.ef_search,
                    reranked=reranker is not None,
                )
                for result in results
            ]
        )

    @router.get(
        "/passages/{passage_id}",
        summary="One passage by id",
        responses={404: {"model": ErrorResponse, "description": "No passage has this id."}},
    )
    def passage(
        retriever: RetrieverDep,
        passage_id: Annotated[int, Path(ge=0, le=MAX_PASSAGE_ID, description="A `passage_id` from a search.")],
    ) -> Passage:
        """The passage exactly as stored, e.g. to re-check a citation."""
        return Passage.from_hit(retriever.get(passage_id))

    @router.get("/info", summary="What this index holds")
    async def info(request: Request) -> InfoResponse:
        """Model, counts, build date, corpus files and this server's limits."""
        summary: InfoResponse = request.app.state.info
        return summary

    return router


health_router = APIRouter(tags=["health"])


# Two routes, not one `api_route(methods=["GET", "HEAD"])`: that gives both operations one operationId, which
# makes /openapi.json invalid (ids must be unique) and warns each time the schema is built.
@health_router.get("/healthz", summary="Liveness")
@health_router.head("/healthz", summary="Liveness, headers only", operation_id="healthz_head")
async def healthz(retriever: RetrieverDep) -> Health:
    """Answers as long as the server runs; the index was opened and checked at start-up."""
    return Health(passages=len(retriever))
