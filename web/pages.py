"""The search page: one GET form at `/?q=`, rendered on the server so that it works without JavaScript.

Every piece of corpus text reaches the page through Jinja2 with autoescaping on, and a link is only made from
an http(s) URL: a corpus is trusted to be genuine, not to be free of markup or `javascript:` URLs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from retriever import GroundsearchError, Hit, InvalidQuery
from web.api import RetrieverDep
from web.models import InfoResponse, Limits

TEMPLATES = Path(__file__).parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name: corpus text is never markup
    undefined=jinja2.StrictUndefined,
)

# The page loads nothing from elsewhere (it must work offline) and runs no inline script, so the policy can
# forbid both: even a passage that slipped past escaping could not run code or call out.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# What a hit's score means, for the hover text of the score on the page.
SCORE_MEANING = {
    "dense": "cosine similarity of query and passage",
    "lexical": "BM25 score of the query's words in the passage",
    "hybrid": "fused score: normalised embedding similarity and BM25, 0 to 1",
}


@dataclass(frozen=True)
class ResultView:
    """One hit as the template shows it: formatting and link safety decided here, not in the template."""

    rank: int
    score: str
    title: str
    href: str | None
    crumbs: str
    section: str
    text: str
    # The text in three pieces around the highlight, for the template to escape each and mark the middle one:
    # markup is never built here. `marked` is empty where there is no highlight, and then before == text.
    before: str
    marked: str
    after: str
    passage_id: int
    start: int
    end: int
    revision: str | None
    permalink: str | None
    citation: str
    found_by: str
    # "strong match" / "weak match" for readers, the number in the hover text; empty where uncalibrated.
    match: str = ""
    confidence: str = ""
    weak: bool = False


def safe_href(url: str | None) -> str | None:
    """The URL if a browser may follow it from our page, else None (no `javascript:`, `data:`, relative...)."""
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def crumbs(url: str | None) -> str:
    """`en.wikipedia.org › wiki › Hotel_Charlottetown`: where a result comes from, readable at a glance."""
    if not url:
        return "no source URL"
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    return " › ".join([parts.netloc or parts.scheme, *segments])


def result_view(hit: Hit, weak: bool = False) -> ResultView:
    span = hit.highlight
    start, end = (span.start, span.end) if span else (len(hit.text), len(hit.text))
    return ResultView(
        rank=hit.rank,
        score=f"{hit.score:.3f}" if hit.score is not None else "",
        title=hit.title,
        href=safe_href(hit.url),
        crumbs=crumbs(hit.url),
        section=hit.section,
        text=hit.text,
        before=hit.text[:start],
        marked=hit.text[start:end],
        after=hit.text[end:],
        passage_id=hit.passage_id,
        start=hit.start,
        end=hit.end,
        revision=hit.revision,
        permalink=safe_href(hit.permalink),
        citation=hit.citation(),
        found_by=hit.found_by_text(),
        match=("weak match" if weak else "strong match") if hit.confidence is not None else "",
        confidence=f"confidence {hit.confidence:.2f}" if hit.confidence is not None else "",
        weak=weak,
    )


def parse_k(raw: str | None, limits: Limits) -> int:
    """`k` from the page's query string; ValueError with a message for the page if it is out of bounds."""
    if raw is None or not raw.strip():
        return limits.default_k
    try:
        k = int(raw)
    except ValueError:
        k = 0
    if not 1 <= k <= limits.max_k:
        raise ValueError(f"k must be a whole number from 1 to {limits.max_k}, not “{raw}”.")
    return k


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def pages_router(limits: Limits) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def search_page(
        request: Request,
        retriever: RetrieverDep,
        q: str | None = None,
        k: str | None = None,
        mode: str | None = None,
    ) -> HTMLResponse:
        info: InfoResponse = request.app.state.info
        page: dict[str, Any] = {
            "q": q or "",
            "k": None,
            "keep_k": False,  # a k from the URL rides along in the form, so a new search keeps it
            "mode": mode if mode in retriever.modes else retriever.default_mode,
            "score_meaning": SCORE_MEANING,
            "info": info,
            "limits": limits,
            "hits": [],
            "error": None,
            "elapsed": None,
            "no_match": None,
        }
        if q is None or not q.strip():
            return render("search.html", state="empty", **page)
        if len(q) > limits.max_query_chars:
            page["error"] = (
                f"Your query is {len(q):,} characters long; the limit is {limits.max_query_chars:,}. "
                "Shorten it and search again."
            )
            return render("search.html", 422, state="error", **page)
        try:
            page["k"] = parse_k(k, limits)
            page["keep_k"] = bool(k and k.strip())
        except ValueError as exc:
            page["error"] = str(exc)
            return render("search.html", 422, state="error", **page)
        if mode and mode.strip() and mode not in retriever.modes:
            page["error"] = f"Unknown search mode “{mode}”; this index offers {', '.join(retriever.modes)}."
            return render("search.html", 422, state="error", **page)
        started = time.perf_counter()
        try:
            result = retriever.search_with_status(q, k=page["k"], mode=page["mode"], rerank=request.app.state.reranker)
        except InvalidQuery as exc:
            page["error"] = f"{exc}."
            return render("search.html", 422, state="error", **page)
        except GroundsearchError as exc:
            page["error"] = f"The index could not answer this search: {exc}."
            return render("search.html", 500, state="error", **page)
        page["elapsed"] = f"{time.perf_counter() - started:.2f}"
        page["hits"] = [result_view(h, weak=result.is_weak(h)) for h in result.hits]
        page["no_match"] = result.no_match_line() if result.answerable is False else None
        return render("search.html", state="results" if result.hits else "none", **page)

    return router
