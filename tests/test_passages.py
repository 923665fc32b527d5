"""Passage splitting: exact slices, about N words, sections never crossed, sentence ends preferred."""

from __future__ import annotations

import re

import pytest

from index_build.documents import Document, Section
from index_build.passages import min_words, split_document


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


def _sectioned(*parts: tuple[str, str]) -> Document:
    """A document laid out as the wikitext cleaner lays one out: "heading\\n" lines outside the sections."""
    text, sections = "", []
    for name, body in parts:
        if text:
            text += "\n\n"
        if name:
            text += name + "\n"
        sections.append(Section(name, len(text), len(text) + len(body)))
        text += body
    return Document(source_id="1", title="T", text=text, sections=tuple(sections))


def test_a_short_section_joins_the_passage_before_it_heading_and_all() -> None:
    doc = _sectioned(("", "Lead sentence goes on here. " * 8), ("Population", "18,056,072 (July 2012 est.)"))
    spans = split_document(doc, words=100)
    assert len(spans) == 1 and spans[0].pieces == 2
    text = doc.text[spans[0].start : spans[0].end]
    assert text == doc.text  # the exact slice, with the short section's heading inside it
    assert text.endswith("Population\n18,056,072 (July 2012 est.)")
    assert spans[0].section == ""  # the section holding most of the words


def test_a_short_first_piece_takes_in_the_next_one() -> None:
    doc = _sectioned(("", "Ada may refer to:"), ("Food", "Ada is a delicacy made with rice and coconut. " * 5))
    spans = split_document(doc, words=100)
    assert [(s.section, s.pieces) for s in spans] == [("Food", 2)]
    assert doc.text[spans[0].start : spans[0].end].startswith("Ada may refer to:\n\nFood\nAda is")


def test_short_sections_never_pile_past_the_target() -> None:
    names = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    doc = _sectioned(*((n, f"Person {n}1\nPerson {n}2\nPerson {n}3") for n in names))  # 6 words a section
    spans = split_document(doc, words=20)  # minimum 4 words, at most 25 words when joining backwards
    assert all(_words(doc.text[s.start : s.end]) >= 4 for s in spans)
    assert all(_words(doc.text[s.start : s.end]) <= 25 + 4 for s in spans)
    assert sum(s.pieces for s in spans) == len(names)
    for section in doc.sections:  # every section lies whole in one passage: nothing lost, nothing repeated
        assert sum(s.start <= section.start and section.end <= s.end for s in spans) == 1


def test_a_whole_short_article_is_one_short_passage() -> None:
    spans = split_document(_doc("Aa is a river."), words=100)
    assert [(s.start, s.end, s.pieces) for s in spans] == [(0, 14, 1)]


def test_a_short_last_piece_joins_backwards_even_past_the_target() -> None:
    doc = _sectioned(("", "Word " * 120 + "end."), ("Airports", "211 (2008)"))
    spans = split_document(doc, words=100)
    assert doc.text[spans[-1].start : spans[-1].end].endswith("Airports\n211 (2008)")
    assert all(_words(doc.text[s.start : s.end]) >= min_words(100) for s in spans)


def test_the_minimum_is_a_fifth_of_the_target() -> None:
    assert (min_words(100), min_words(50), min_words(1)) == (20, 10, 1)
