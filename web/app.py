"""The app factory: open the index once, wire the API, the page and the static files, map domain errors to HTTP.

`create_app` takes a path or an open `Retriever`, so tests and embedding programs can hand one in; nothing is
kept in module globals, and two apps over two indexes can live in one process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from retriever import FilterMatchesNothing, GroundsearchError, InvalidQuery, PassageNotFound, Reranker, Retriever
from retriever.bundle import bundle_info, package_version
from web.api import api_router, health_router
from web.models import InfoResponse, Limits
from web.pages import pages_router
from web.searches import SearchRunner

STATIC = Path(__file__).parent / "static"
DEFAULT_LIMITS = Limits()

DESCRIPTION = """\
Search one groundsearch index. Every hit is a stored passage, verbatim, with its provenance (title, URL,
permalink to the revision, character offsets, SHA-256), so a client can quote it and cite it. Nothing here
writes: every route is a GET, but for the batch search, a POST because a list of queries fits a body better.

[← Back to the search page](/)
"""


def create_app(
    index: str | os.PathLike[str] | Retriever,
    *,
    max_query_chars: int = DEFAULT_LIMITS.max_query_chars,
    max_k: int = DEFAULT_LIMITS.max_k,
    default_k: int = DEFAULT_LIMITS.default_k,
    cors_origins: Sequence[str] = (),
    device: str | None = None,
    encoder: str = "auto",
    reranker: Reranker | None = None,
) -> FastAPI:
    """Build the web app over one index.

    A path is opened here, once, so a missing or invalid index raises its `GroundsearchError` before any
    server starts. `cors_origins` lists the origins whose pages may call the API from a browser; none by
    default. `device` and `encoder` choose the query encoder when a path is given (see `Retriever.open`). A `reranker`
    reorders every search's hits unless a request says `rerank=false`.
    """
    if min(max_query_chars, max_k, default_k) < 1 or default_k > max_k:
        raise ValueError(
            f"limits must be at least 1 and default_k <= max_k; got max_query_chars={max_query_chars}, "
            f"max_k={max_k}, default_k={default_k}"
        )
    limits = Limits(max_query_chars=max_query_chars, max_k=max_k, default_k=default_k)
    retriever = index if isinstance(index, Retriever) else Retriever.open(index, device=device, encoder=encoder)
    modes = [retriever.default_mode, *(m for m in retriever.modes if m != retriever.default_mode)]
    info = InfoResponse.from_bundle_info(bundle_info(retriever.path), modes, limits)

    # FastAPIOffline serves /docs and /redoc with Swagger UI and ReDoc from its own package files instead of a
    # CDN: like the search page, the API's documentation must work on a machine with no internet access.
    app = FastAPIOffline(title="groundsearch", version=package_version(), description=DESCRIPTION)
    app.state.retriever = retriever
    app.state.reranker = reranker
    app.state.info = info
    app.state.limits = limits
    app.state.searches = runner = SearchRunner()
    app.router.add_event_handler("shutdown", runner.close)
    app.include_router(api_router(limits))
    app.include_router(health_router)
    app.include_router(pages_router(limits))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(PassageNotFound, _not_found)
    app.add_exception_handler(InvalidQuery, _invalid_query)
    app.add_exception_handler(FilterMatchesNothing, _filter_matches_nothing)
    app.add_exception_handler(GroundsearchError, _server_error)
    if cors_origins:
        # Read-only API: browsers on those origins may GET, nothing else, and send no credentials.
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET"])
    return app


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _invalid_query(request: Request, exc: Exception) -> JSONResponse:
    # Route parameters are checked before the retriever sees them; this is the backstop, in FastAPI's shape.
    error = {"type": "invalid_query", "loc": ["query"], "msg": str(exc)}
    return JSONResponse({"detail": [error]}, status_code=422)


async def _filter_matches_nothing(request: Request, exc: Exception) -> JSONResponse:
    # Its own type, so that a client (retriever.RemoteRetriever) can tell it from any other refused query.
    error = {"type": "filter_matches_nothing", "loc": ["query"], "msg": str(exc)}
    return JSONResponse({"detail": [error]}, status_code=422)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    # The index went bad under a running server (a file replaced or truncated): say so, in one line.
    return JSONResponse({"detail": str(exc)}, status_code=500)
