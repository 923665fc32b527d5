"""The search result: a stored passage, byte for byte, with everything needed to cite and check it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit


@dataclass(frozen=True)
class Found:
    """Where one retriever ranked a hit: "dense" (embedding similarity) or "lexical" (BM25), 1-based rank."""

    retriever: str
    rank: int
    score: float


@dataclass(frozen=True)
class Hit:
    """One passage returned by a search or by `Retriever.get`.

    `text` is exactly what the index stores: `sha256(text.encode("utf-8")) == sha256`, and it is the slice
    `[start:end]` of the cleaned article text. `rank` is 1-based; `score` is the inner product of unit
    vectors (cosine similarity) for a dense search, the BM25 score for a lexical one, the fused score for a
    hybrid one, and None for a passage fetched by id. `found_by` says which retrievers returned the passage
    and where, so a client can see why it is there.
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

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "permalink": self.permalink}

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

    def citation(self) -> str:
        """One line a QA tool can print under an answer: where the passage is, and how to check it."""
        where = f"{self.title}, {self.section}" if self.section else self.title
        return (
            f"{where}. {self.permalink or '(no URL)'} "
            f"(passage {self.passage_id}, characters {self.start}-{self.end}, sha256 {self.sha256[:16]})"
        )
