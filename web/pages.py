"""The pages: the search at `/?q=` and a passage in context at `/passages/{id}`, rendered on the server so that
they work without JavaScript (page.js only adds copy buttons and the `/` key).

Everything here is formatting: which passages to show comes from `Retriever` (`search_with_status`, `context`),
and how to cite one from `Hit.citation`.

Every piece of corpus text reaches the page through Jinja2 with autoescaping on, and a link is only made from
an http(s) URL: a corpus is trusted to be genuine, not to be free of markup or `javascript:` URLs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from retriever import GroundsearchError, Hit, InvalidQuery, PassageNotFound, SearchResult
from retriever.citation import revision_date
from web.api import MAX_PASSAGE_ID, RetrieverDep
from web.models import InfoResponse, Limits
from web.searches import searches

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


# What a hit's score means, for the "Scores" details of each hit.
SCORE_MEANING = {
    "dense": "cosine similarity of query and passage",
    "lexical": "BM25 score of the query's words in the passage",
    "hybrid": "fused score: normalised embedding similarity and BM25, 0 to 1",
}
SIDE_MEANING = {"dense": "cosine similarity", "lexical": "BM25"}
CITATION_STYLES = (("plain", "Plain"), ("bibtex", "BibTeX"), ("mediawiki", "MediaWiki {{cite web}}"))
CONTEXT_PASSAGES = 2  # neighbours shown on each side of a passage on its page


@dataclass(frozen=True)
class Citation:
    style: str
    label: str
    text: str


@dataclass(frozen=True)
class ResultView:
    """One passage as a template shows it: formatting and link safety decided here, not in the template."""

    rank: int
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
    document_id: int
    start: int
    end: int
    sha256: str
    revision: str | None
    permalink: str | None
    # The revision's date (content is from a dump: the live article may have changed since), and its timestamp.
    date: str | None
    timestamp: str | None
    citation: str
    citations: tuple[Citation, ...]
    # "strong match" / "weak match" for readers, the number in the hover text; empty where uncalibrated.
    match: str = ""
    confidence: str = ""
    weak: bool = False
    # The numbers behind the rank, for the "Scores" details: (what, value, what it means).
    scores: tuple[tuple[str, str, str], ...] = ()
    # "disambiguation page" / "list page" for a hit from a navigation page (retriever.Hit.page_kind), else empty.
    page_kind: str = ""


@dataclass(frozen=True)
class GroupView:
    """The hits of one article on a page: the best shown, the others folded under it, in rank order."""

    lead: ResultView
    more: tuple[ResultView, ...]


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


def scores(hit: Hit, mode: str, bar: float | None) -> tuple[tuple[str, str, str], ...]:
    """The hit's numbers in words: the mode's score, each retriever's rank and score, the confidence."""
    rows = []
    if hit.score is not None:
        rows.append(("score", f"{hit.score:.3f}", SCORE_MEANING[mode]))
    for found in hit.found_by:
        meaning = f"{SIDE_MEANING.get(found.retriever, 'score')} {found.score:.3f}"
        rows.append((found.retriever, f"#{found.rank}", meaning))
    if hit.confidence is not None:
        against = f"; the bar for a strong match is {bar:.2f}" if bar is not None else ""
        rows.append(
            ("confidence", f"{hit.confidence:.2f}", f"calibrated probability that it answers the query{against}")
        )
    return tuple(rows)


def result_view(hit: Hit, weak: bool = False, mode: str = "hybrid", bar: float | None = None) -> ResultView:
    span = hit.highlight
    start, end = (span.start, span.end) if span else (len(hit.text), len(hit.text))
    return ResultView(
        rank=hit.rank,
        title=hit.title,
        href=safe_href(hit.url),
        crumbs=crumbs(hit.url),
        section=hit.section,
        text=hit.text,
        before=hit.text[:start],
        marked=hit.text[start:end],
        after=hit.text[end:],
        passage_id=hit.passage_id,
        document_id=hit.document_id,
        start=hit.start,
        end=hit.end,
        sha256=hit.sha256,
        revision=hit.revision,
        permalink=safe_href(hit.permalink),
        date=revision_date(hit.timestamp),
        timestamp=hit.timestamp,
        citation=hit.citation(),
        citations=tuple(Citation(style, label, hit.citation(style)) for style, label in CITATION_STYLES),
        match=("weak match" if weak else "strong match") if hit.confidence is not None else "",
        confidence=f"confidence {hit.confidence:.2f}" if hit.confidence is not None else "",
        weak=weak,
        scores=scores(hit, mode, bar),
        page_kind=f"{hit.page_kind} page" if hit.page_kind else "",
    )


def grouped(views: list[ResultView]) -> list[GroupView]:
    """Hits grouped by article, in the order of each article's best hit: one article cannot fill the page."""
    groups: dict[int, list[ResultView]] = {}
    for view in views:
        groups.setdefault(view.document_id, []).append(view)
    return [GroupView(lead=members[0], more=tuple(members[1:])) for members in groups.values()]


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


def parse_page(raw: str | None, k: int, limits: Limits) -> int:
    """The 1-based results page; its first rank must lie within `limits.max_k`, the deepest rank a search reaches."""
    last = math.ceil(limits.max_k / k)
    if raw is None or not raw.strip():
        return 1
    try:
        page = int(raw)
    except ValueError:
        page = 0
    if not 1 <= page <= last:
        raise ValueError(
            f"page must be a whole number from 1 to {last}, not “{raw}”: results stop at rank {limits.max_k}, "
            "this server's limit."
        )
    return page


def strength(result: SearchResult, shown: list[Hit]) -> str:
    """`2 strong matches`: how many of the hits shown match well; empty where the index has no calibration."""
    if result.min_confidence is None or all(h.confidence is None for h in shown):
        return ""
    strong = sum(1 for h in shown if not result.is_weak(h))
    return f"{strong} strong match{'' if strong == 1 else 'es'}"


def page_link(q: str, mode: str, k: int | None, page: int) -> str:
    """The URL of another page of the same search."""
    params: dict[str, str | int] = {"q": q, "mode": mode}
    if k is not None:
        params["k"] = k
    if page > 1:
        params["page"] = page
    return "/?" + urlencode(params)


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def pages_router(limits: Limits) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    async def search_page(
        request: Request,
        retriever: RetrieverDep,
        q: str | None = None,
        k: str | None = None,
        mode: str | None = None,
        page: str | None = None,
    ) -> HTMLResponse:
        info: InfoResponse = request.app.state.info
        context: dict[str, Any] = {
            "q": q or "",
            "k": None,
            "keep_k": False,  # a k from the URL rides along in the form, so a new search keeps it
            "mode": mode if mode in retriever.modes else retriever.default_mode,
            "info": info,
            "limits": limits,
            "groups": [],
            "error": None,
            "elapsed": None,
            "no_match": None,
            "ranks": (0, 0),
            "strength": "",
            "page": 1,
            "previous_page": None,
            "next_page": None,
            "at_limit": False,
            "past_end": None,
        }
        if q is None or not q.strip():
            return render("search.html", state="empty", **context)
        if len(q) > limits.max_query_chars:
            context["error"] = (
                f"Your query is {len(q):,} characters long; the limit is {limits.max_query_chars:,}. "
                "Shorten it and search again."
            )
            return render("search.html", 422, state="error", **context)
        try:
            context["k"] = parse_k(k, limits)
            context["keep_k"] = bool(k and k.strip())
            context["page"] = parse_page(page, context["k"], limits)
        except ValueError as exc:
            context["error"] = str(exc)
            return render("search.html", 422, state="error", **context)
        if mode and mode.strip() and mode not in retriever.modes:
            context["error"] = f"Unknown search mode “{mode}”; this index offers {', '.join(retriever.modes)}."
            return render("search.html", 422, state="error", **context)
        per_page, number = context["k"], context["page"]
        # Deeper pages search deeper and show a slice: the hits above it are the ones pages before showed.
        offset = (number - 1) * per_page
        depth = min(offset + per_page, limits.max_k)
        started = time.perf_counter()
        try:
            result = await searches(request).run(
                retriever.search_with_status, q, k=depth, mode=context["mode"], rerank=request.app.state.reranker
            )
        except InvalidQuery as exc:
            context["error"] = f"{exc}."
            return render("search.html", 422, state="error", **context)
        except GroundsearchError as exc:
            context["error"] = f"The index could not answer this search: {exc}."
            return render("search.html", 500, state="error", **context)
        context["elapsed"] = f"{time.perf_counter() - started:.2f}"
        shown = result.hits[offset:depth]
        views = [result_view(h, result.is_weak(h), context["mode"], result.min_confidence) for h in shown]
        context["groups"] = grouped(views)
        context["no_match"] = result.no_match_line() if result.answerable is False else None
        link_k = per_page if context["keep_k"] else None
        if number > 1:
            context["previous_page"] = page_link(q, context["mode"], link_k, number - 1)
        # A full page may have more behind it, unless the index or the server's limit ends here.
        if len(result.hits) == depth and depth < min(limits.max_k, len(retriever)):
            context["next_page"] = page_link(q, context["mode"], link_k, number + 1)
        context["at_limit"] = len(result.hits) == depth == limits.max_k
        if not shown:
            if result.hits:
                context["past_end"] = (len(result.hits), page_link(q, context["mode"], link_k, 1))
            return render("search.html", state="none", **context)
        # The ranks shown, not k: a page shows fewer where the index or the search ran out.
        context["ranks"] = (offset + 1, offset + len(shown))
        context["strength"] = strength(result, shown)
        return render("search.html", state="results", **context)

    @router.get("/passages/{passage_id}", response_class=HTMLResponse)
    def passage_page(request: Request, retriever: RetrieverDep, passage_id: str) -> HTMLResponse:
        info: InfoResponse = request.app.state.info
        context: dict[str, Any] = {"q": "", "keep_k": False, "mode": retriever.default_mode, "info": info}
        context["limits"] = limits
        try:
            # ASCII digits only: str.isdigit also accepts "²", which int() refuses.
            number = int(passage_id) if passage_id.isascii() and passage_id.isdigit() else -1
            if not 0 <= number <= MAX_PASSAGE_ID:
                raise PassageNotFound(f"no passage with id “{passage_id}”")
            around = retriever.context(number, before=CONTEXT_PASSAGES, after=CONTEXT_PASSAGES)
        except PassageNotFound as exc:
            context["error"] = f"{str(exc)[0].upper()}{str(exc)[1:]}."
            return render("passage.html", 404, state="error", **context)
        except GroundsearchError as exc:
            context["error"] = f"The index could not fetch this passage: {exc}."
            return render("passage.html", 500, state="error", **context)
        context["hit"] = result_view(around.passage)
        context["before"] = [result_view(h) for h in around.before]
        context["after"] = [result_view(h) for h in around.after]
        context["previous"] = around.previous
        context["next"] = around.next
        return render("passage.html", state="passage", **context)

    return router
