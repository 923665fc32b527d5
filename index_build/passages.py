"""DPR-style passages: about N words, never crossing a section, cut at a sentence end where one is near.

A passage is a pair of offsets into the article's cleaned text, so its text is an exact slice
(`document.text[start:end]`): what a search returns can always be found, unchanged, in the article.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from index_build.documents import Document

DEFAULT_WORDS = 100

_WORD = re.compile(r"\S+")
# A word that closes a sentence: ends in . ! ? (or CJK full stops), optionally followed by closing quotes/brackets.
_SENTENCE_END = re.compile(r"[.!?。！？][\"'”’)\]]*$")
# Cutting this far from the target length is still "about N words": look for a sentence end in this window.
_SLACK = 0.25


@dataclass(frozen=True)
class PassageSpan:
    section: str
    order: int
    start: int
    end: int


def split_document(document: Document, words: int = DEFAULT_WORDS) -> list[PassageSpan]:
    """Split every section of a document into passages, numbered in document order."""
    if words < 1:
        raise ValueError(f"passage length must be at least one word, got {words}")
    spans: list[PassageSpan] = []
    for section in document.section_spans():
        for start, end in _split_span(document.text, section.start, section.end, words):
            spans.append(PassageSpan(section.name, len(spans), start, end))
    return spans


def _split_span(text: str, lo: int, hi: int, words: int) -> Iterator[tuple[int, int]]:
    matches = list(_WORD.finditer(text, lo, hi))
    if not matches:
        return
    slack = max(1, int(words * _SLACK))
    first = 0
    while first < len(matches):
        remaining = len(matches) - first
        if remaining <= words + slack:
            last = len(matches) - 1  # the tail fits in one passage
        elif remaining < 2 * words:
            # Two passages are left: cut near the middle rather than leave a runt of a few words at the end.
            half = remaining // 2
            last = _best_cut(text, matches, first, half, max(1, int(half * _SLACK)))
        else:
            last = _best_cut(text, matches, first, words, slack)
        yield matches[first].start(), matches[last].end()
        first = last + 1


def _best_cut(text: str, matches: list[re.Match[str]], first: int, words: int, slack: int) -> int:
    """Index of the last word of the passage starting at `first`: the sentence end nearest the target."""
    target = first + words - 1
    best: int | None = None
    for last in range(target - slack, target + slack + 1):
        if _ends_sentence(text, matches, last) and (best is None or abs(last - target) < abs(best - target)):
            best = last
    return target if best is None else best


def _ends_sentence(text: str, matches: list[re.Match[str]], i: int) -> bool:
    if _SENTENCE_END.search(matches[i].group()):
        return True
    # A paragraph break also ends a thought (lists, headings inside sections, captions).
    following = text[matches[i].end() : matches[i + 1].start()] if i + 1 < len(matches) else ""
    return "\n\n" in following
