"""Passage splitting: exact slices, about N words, sections never crossed, sentence ends preferred."""

from __future__ import annotations

import re

import pytest

from index_build.documents import Document, Section
from index_build.passages import split_document


def _words(text: str) -> int:
    return len(text.split())


def _doc(text: str, sections: tuple[Section, ...] = ()) -> Document:
    return Document(source_id="1", title="T", text=text, sections=sections)


def test_passages_are_exact_slices_of_about_n_words() -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank today."  # 14 words
    text = " ".join([sentence] * 60)
    spans = split_document(_doc(text), words=100)
    assert len(spans) >= 7
    for span in spans:
        piece = text[span.start : span.end]
        assert piece == piece.strip() and piece
        assert 50 <= _words(piece) <= 125  # about 100: no runt at the end, no overlong passage
        assert piece.endswith(".")  # a sentence end was always within reach
    covered = " ".join(text[s.start : s.end] for s in spans)
    assert covered.split() == text.split()  # nothing lost, nothing repeated
    assert [s.order for s in spans] == list(range(len(spans)))


def test_without_sentence_ends_cuts_at_the_target() -> None:
    text = " ".join(f"w{i}" for i in range(250))
    spans = split_document(_doc(text), words=100)
    assert [_words(text[s.start : s.end]) for s in spans] == [100, 75, 75]


def test_passages_never_cross_a_section() -> None:
    lead = "Lead words here. " * 10
    body = "Body sentence number one. " * 40
    text = lead + "\n\nHistory\n\n" + body
    body_start = text.index("Body")
    sections = (Section("", 0, len(lead.rstrip())), Section("History", body_start, len(text.rstrip())))
    spans = split_document(_doc(text, sections), words=50)
    assert spans[0].section == "" and spans[0].end <= len(lead)
    assert all(s.start >= body_start for s in spans if s.section == "History")
    assert "History\n" not in "".join(text[s.start : s.end] for s in spans)


def test_empty_and_whitespace_sections_make_no_passage() -> None:
    assert split_document(_doc("   \n\n  ")) == []


def test_non_latin_text_keeps_offsets() -> None:
    text = "Анархизмът е политическа философия. " * 50
    spans = split_document(_doc(text), words=40)
    assert all(re.search("[А-я]", text[s.start : s.end]) for s in spans)


def test_invalid_length_is_refused() -> None:
    with pytest.raises(ValueError):
        split_document(_doc("a b c"), words=0)
