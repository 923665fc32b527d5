"""DPR-style passages: about N words, cut at a sentence end where one is near, none shorter than a minimum.

A passage is a pair of offsets into the article's cleaned text, so its text is an exact slice
(`document.text[start:end]`): what a search returns can always be found, unchanged, in the article.

Each section is split on its own, so a passage normally stays inside one section. A piece shorter than
`min_words` (a fifth of the target, 20 words at the default 100) cannot stand alone: "1", "211 (2008)" or
"(UK)\\n(FRA)" answer nothing and, scored against a query, look like a find. Such a piece is joined to a
neighbour instead:

- a short tail of a section joins the passage before it in the same section (the splitter already avoids
  leaving one, by halving the last two passages' worth of words);
- a whole section that is short joins the previous passage, across the section boundary, as long as that
  passage stays within the target's slack (125 words at 100); the slice then holds the short section's
  heading line, which is what gives its few words their meaning ("Population\\n18,056,072 (July 2012 est.)");
- otherwise (the article's first piece, or a previous passage already full) it starts a passage that takes
  in the next piece, whatever its section.

The last passage of an article, if short, joins the one before it. Only an article whose whole text is
shorter than the minimum gives a shorter passage. A passage that spans sections is labelled with the section
that holds most of its words (the first of them on a tie); `pieces` says how many pieces it joins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from index_build.documents import Document

DEFAULT_WORDS = 100
# The shortest passage, as a fraction of the target length: 20 words at the default 100.
MIN_FRACTION = 0.2

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
    pieces: int = 1  # how many pieces of the splitter it joins: more than 1 where short ones were merged


def min_words(words: int = DEFAULT_WORDS) -> int:
    """The shortest passage, in words, for a target of `words` (a whole article may still be shorter)."""
    return max(1, round(words * MIN_FRACTION))


def split_document(document: Document, words: int = DEFAULT_WORDS) -> list[PassageSpan]:
    """Split every section of a document into passages, numbered in document order."""
    if words < 1:
        raise ValueError(f"passage length must be at least one word, got {words}")
    pieces: list[_Piece] = []
    for number, section in enumerate(document.section_spans()):
        for start, end, count in _split_span(document.text, section.start, section.end, words):
            pieces.append(_Piece(start, end, number, {number: count}))
    names = [s.name for s in document.section_spans()]
    merged = _merge_short(pieces, min_words(words), words + _slack(words))
    return [PassageSpan(names[p.main_section()], i, p.start, p.end, p.pieces) for i, p in enumerate(merged)]


@dataclass
class _Piece:
    """A run of text from one or more consecutive sections, with its words counted per section."""

    start: int
    end: int
    last_section: int
    words_by_section: dict[int, int]
    pieces: int = 1

    @property
    def words(self) -> int:
        return sum(self.words_by_section.values())

    def join(self, other: _Piece) -> _Piece:
        counts = dict(self.words_by_section)
        for section, count in other.words_by_section.items():
            counts[section] = counts.get(section, 0) + count
        return _Piece(self.start, other.end, other.last_section, counts, self.pieces + other.pieces)

    def main_section(self) -> int:
        # max() keeps the first of equal counts, and dicts keep the sections in text order.
        return max(self.words_by_section, key=lambda s: self.words_by_section[s])


def _merge_short(pieces: list[_Piece], minimum: int, cap: int) -> list[_Piece]:
    """Join every piece shorter than `minimum` words to a neighbour (the rules are in the module docstring)."""
    out: list[_Piece] = []
    for piece in pieces:
        if out and (
            out[-1].words < minimum  # a short piece that could not join backwards takes in this one
            or (
                piece.words < minimum
                and (piece.last_section == out[-1].last_section or out[-1].words + piece.words <= cap)
            )
        ):
            out[-1] = out[-1].join(piece)
        else:
            out.append(piece)
    if len(out) > 1 and out[-1].words < minimum:
        last = out.pop()
        out[-1] = out[-1].join(last)
    return out


def _slack(words: int) -> int:
    return max(1, int(words * _SLACK))


def _split_span(text: str, lo: int, hi: int, words: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, words) of each passage of the section `text[lo:hi]`."""
    matches = list(_WORD.finditer(text, lo, hi))
    if not matches:
        return
    slack = _slack(words)
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
        yield matches[first].start(), matches[last].end(), last - first + 1
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
