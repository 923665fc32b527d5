"""What every corpus reader yields: one cleaned article with its provenance and section spans."""

from __future__ import annotations

from dataclasses import dataclass, field

from retriever.errors import GroundsearchError


class CorpusError(GroundsearchError):
    """A corpus file cannot be read: missing, unknown format, malformed, or empty after filtering."""


@dataclass(frozen=True)
class Section:
    """A span of `Document.text` under one heading.

    `text[start:end]` is the section's body without its heading line; the lead section has name "".
    Passages never cross a section, so sections must not overlap and must be in text order.
    """

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One article, cleaned to plain text, as every reader yields it.

    `source_id` is the corpus' own identifier (a page id, a JSONL "id", a BEIR "_id"), kept as a string
    because corpora disagree on its type. Passage offsets are relative to `text`.
    """

    source_id: str
    title: str
    text: str
    url: str | None = None
    revision: str | None = None
    timestamp: str | None = None
    sections: tuple[Section, ...] = field(default_factory=tuple)
    # A navigation page ("disambiguation" or "list", index_build.readers.page_kinds), None for an article: stored
    # as documents.kind so that a hit from a menu of other articles says so (retriever.Hit.page_kind).
    kind: str | None = None

    def unicode_problem(self) -> str | None:
        """What makes a stored field not valid Unicode (a lone surrogate, which JSON's `\\ud800` can give),
        or None. Such text cannot be stored as UTF-8, and replacing the character would change the source."""
        for name in ("source_id", "title", "text", "url", "revision", "timestamp"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                char = value[exc.start]
                return f"has a lone surrogate {char!r} at character {exc.start} of its {name}: not valid Unicode"
        return None

    def section_spans(self) -> tuple[Section, ...]:
        """The sections, or the whole text as one unnamed section when the reader gave none."""
        return self.sections or (Section("", 0, len(self.text)),)
