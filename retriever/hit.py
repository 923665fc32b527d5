"""The search result: a stored passage, byte for byte, with everything needed to cite and check it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from retriever.citation import cite


@dataclass(frozen=True)
class Found:
    """Where one retriever ranked a hit: "dense" (embedding similarity) or "lexical" (BM25), 1-based rank."""

    retriever: str
    rank: int
    score: float


@dataclass(frozen=True)
class Span:
    """Offsets into a hit's `text`: `text[start:end]` is the part that best answers the query, verbatim.

    Offsets, not a copy of the words, so that whatever shows the highlight emphasises characters of the
    stored passage and can never show anything else.
    """

    start: int
    end: int

    def of(self, text: str) -> str:
        return text[self.start : self.end]


@dataclass(frozen=True)
class Hit:
    """One passage returned by a search or by `Retriever.get`.

    `text` is exactly what the index stores: `sha256(text.encode("utf-8")) == sha256`, and it is the slice
    `[start:end]` of the cleaned article text. `rank` is 1-based; `score` is the inner product of unit
    vectors (cosine similarity) for a dense search, the BM25 score for a lexical one, the fused score for a
    hybrid one, and None for a passage fetched by id. `found_by` says which retrievers returned the passage
    and where, so a client can see why it is there. `highlight` is the sentence (or clause) of `text` that
    best answers the query (`retriever.highlight`); None for a passage fetched by id, a search made with
    `highlight=False`, or a passage with no words. `confidence` is the calibrated probability that this
    passage answers the query (`retriever.confidence`); None for a passage fetched by id, a search made with
    `confidence=False`, or an index without a calibration for its model. `page_kind` is "disambiguation" or
    "list" when the passage comes from a navigation page (a menu of other articles, which grounds nothing
    itself; index_build.readers.page_kinds), None for an article and for every passage of an older index.
    """

    passage_id: int
    rank: int
    score: float | None
    text: str
    title: str
    section: str
    url: str | None
    document_id: int
    source_id: str
    revision: str | None
    timestamp: str | None
    start: int
    end: int
    sha256: str
    found_by: tuple[Found, ...] = ()
    highlight: Span | None = None
    confidence: float | None = None
    page_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, `highlight` as `{"start": ..., "end": ...}` offsets into `text` (or None)."""
        return {**asdict(self), "permalink": self.permalink}

    @property
    def highlighted_text(self) -> str | None:
        """`text[highlight.start:highlight.end]`: the highlighted words, or None without a highlight."""
        return self.highlight.of(self.text) if self.highlight else None

    @property
    def highlight_in_article(self) -> Span | None:
        """The highlight as offsets into the article's cleaned text, like `start` and `end`, for citing it."""
        if self.highlight is None:
            return None
        return Span(self.start + self.highlight.start, self.start + self.highlight.end)

    def rank_in(self, retriever: str) -> int | None:
        """This passage's rank in one retriever's list, or None if that retriever did not return it."""
        return next((f.rank for f in self.found_by if f.retriever == retriever), None)

    def found_by_text(self) -> str:
        """`dense #2, lexical #1`: why the passage is here, for people reading results."""
        return ", ".join(f"{f.retriever} #{f.rank}" for f in self.found_by)

    @property
    def permalink(self) -> str | None:
        """A link to the exact revision the passage came from, where the source is a MediaWiki site."""
        if not self.url or not self.revision:
            return self.url
        parts = urlsplit(self.url)
        if "/wiki/" not in parts.path:
            return self.url
        site = parts.path.split("/wiki/", 1)[0]
        title = quote(self.title.replace(" ", "_"), safe="/:_-.,()'")
        return f"{parts.scheme}://{parts.netloc}{site}/w/index.php?title={title}&oldid={self.revision}"

    def citation(self, style: str = "plain") -> str:
        """The passage cited in `style` (`retriever.citation.STYLES`): "plain", one line a QA tool can print under
        an answer (where the passage is, and how to check it); "bibtex", an @misc entry; "mediawiki", a
        {{cite web}} template. Each is built from this hit's fields alone."""
        return cite(self, style)


@dataclass(frozen=True)
class Context:
    """A passage in place, from `Retriever.context`: its neighbours in the same section, and where to go next.

    `before` and `after` are the passages just ahead of and just past `passage` in its section, in text order
    (fewer where the section starts or ends sooner). `previous` and `next` are the ids of the passages right
    before and right after `passage` in its document, whatever their section; None at the document's ends.
    """

    passage: Hit
    before: tuple[Hit, ...]
    after: tuple[Hit, ...]
    previous: int | None
    next: int | None

    @property
    def passages(self) -> tuple[Hit, ...]:
        """`before`, `passage` and `after`, in text order."""
        return (*self.before, self.passage, *self.after)


@dataclass(frozen=True)
class SearchResult:
    """One query's hits and whether the corpus has a good match for it at all.

    `answerable` is True when the best hit's confidence reaches `min_confidence`, False when none does (the
    hits are still there, best first, but a QA tool should not ground an answer on them), and None when the
    index has no calibration, so nothing can be said. `confidence` is the best hit's.
    """

    query: str
    hits: list[Hit]
    answerable: bool | None
    confidence: float | None
    min_confidence: float | None

    def is_weak(self, hit: Hit) -> bool:
        """Whether `hit` is below the bar: shown, but not a match to rely on."""
        return self.min_confidence is not None and hit.confidence is not None and hit.confidence < self.min_confidence

    def no_match_line(self) -> str:
        """What to tell a reader when `answerable` is False, in one line."""
        best = f"{self.confidence:.2f}" if self.confidence is not None else "none"
        bar = f"{self.min_confidence:.2f}" if self.min_confidence is not None else "?"
        return (
            f"No passage in this corpus matches well (best confidence {best}, the bar is {bar}); these hits are weak."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "answerable": self.answerable,
            "confidence": self.confidence,
            "min_confidence": self.min_confidence,
            "hits": [hit.to_dict() for hit in self.hits],
        }
