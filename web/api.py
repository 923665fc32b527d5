"""The JSON API: search, passage by id, info, health. Each route validates, calls `Retriever`, and converts.

Routes are plain `def`s: FastAPI runs them in its threadpool, so a search (model forward pass, FAISS, SQLite)
never blocks the event loop and many clients are served at once. `Retriever` is safe to share between threads.

No `from __future__ import annotations` here: the parameter annotations refer to `limits`, a local of
`api_router`, and FastAPI must evaluate them when the route is defined, not later as strings.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from retriever import Reranker, Retriever
from web.models import ErrorResponse, Health, InfoResponse, Limits, Passage, SearchResponse

# SQLite integers are signed 64-bit: a larger id could never exist, and would overflow the driver.
MAX_PASSAGE_ID = 2**63 - 1


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


def api_router(limits: Limits) -> APIRouter:
    """The `/api` routes, with `limits` written into their parameter checks (and so into the OpenAPI document)."""
    router = APIRouter(prefix="/api", tags=["api"])

    @router.get("/search", summary="Search the corpus")
    def search(
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
    ) -> SearchResponse:
        """The `k` passages that best match `q`, best first, each verbatim with its provenance, and whether any
        of them matches well (`answerable`)."""
        require_words(q)
        reranker = get_reranker(request, rerank)
        result = retriever.search_with_status(
            q,
            k=k,
            min_confidence=min_confidence,
            mode=mode,
            nprobe=nprobe,
            ef_search=ef_search,
            highlight=highlight,
            rerank=reranker,
        )
        return SearchResponse.from_result(
            result,
            mode=mode or retriever.default_mode,
            k=k,
            nprobe=nprobe,
            ef_search=ef_search,
            reranked=reranker is not None,
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
