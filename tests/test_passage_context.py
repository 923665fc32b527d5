"""A passage in place (`Retriever.context`) and a hit's citation styles, on the real small index."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from retriever import Hit, InvalidQuery, PassageNotFound, Retriever
from retriever.citation import STYLES


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


def test_context_is_the_passage_between_its_section_neighbours(retriever: Retriever) -> None:
    """Every passage of the index, checked against the store read in id order: a document's passages have
    consecutive ids, and a section's passages are an unbroken run of them."""
    every = [retriever.get(i) for i in range(len(retriever))]

    def same_place(a: Hit, b: Hit) -> bool:
        return a.document_id == b.document_id and a.section == b.section

    sections_with_several = 0
    for hit in every:
        i = hit.passage_id
        context = retriever.context(i)
        assert context.passage == hit
        before = []
        while len(before) < 2 and i - len(before) - 1 >= 0 and same_place(every[i - len(before) - 1], hit):
            before.insert(0, every[i - len(before) - 1])
        after = []
        while len(after) < 2 and i + len(after) + 1 < len(every) and same_place(every[i + len(after) + 1], hit):
            after.append(every[i + len(after) + 1])
        assert list(context.before) == before and list(context.after) == after, i
        assert context.passages == (*before, hit, *after)
        assert context.previous == (i - 1 if i > 0 and every[i - 1].document_id == hit.document_id else None)
        assert context.next == (i + 1 if i + 1 < len(every) and every[i + 1].document_id == hit.document_id else None)
        sections_with_several += bool(before or after)
    assert sections_with_several > len(every) // 2  # the check saw real neighbours, not only lone passages

    wide = retriever.context(every[-1].passage_id, before=1000, after=0)
    assert wide.after == () and wide.next is None and all(same_place(h, every[-1]) for h in wide.before)
    alone = retriever.context(5, before=0, after=0)
    assert alone.before == alone.after == () and alone.passage == every[5]


def test_context_refuses_what_is_not_there(retriever: Retriever) -> None:
    with pytest.raises(PassageNotFound, match=f"no passage with id {len(retriever)}"):
        retriever.context(len(retriever))
    with pytest.raises(PassageNotFound):
        retriever.context(-1)
    for bad in ({"before": -1}, {"after": 1.5}, {"before": True}):
        with pytest.raises(InvalidQuery, match="must be a whole number >= 0"):
            retriever.context(0, **bad)  # type: ignore[arg-type]


def test_citation_styles_are_built_from_the_hits_fields(retriever: Retriever) -> None:
    hit = retriever.search("hotel in Prince Edward Island", k=1)[0]
    assert hit.revision and hit.timestamp and hit.permalink
    assert hit.citation() == hit.citation("plain") and hit.permalink in hit.citation()
    date = hit.timestamp[:10]
    bibtex = hit.citation("bibtex")
    assert bibtex.startswith(f"@misc{{Hotel_Charlottetown:{hit.revision},\n") and bibtex.endswith("\n}")
    assert "  title = {{Hotel Charlottetown}},\n" in bibtex
    assert f"  url = {{{hit.permalink}}},\n" in bibtex and f"  urldate = {{{date}}}\n" in bibtex
    assert f"revision {hit.revision}" in bibtex and f"characters {hit.start}-{hit.end}" in bibtex
    wiki = hit.citation("mediawiki")
    assert wiki.startswith("{{cite web |title=Hotel Charlottetown |") and wiki.endswith("}}")
    assert f"|url={hit.permalink} " in wiki and f"|date={date} " in wiki and "|website=en.wikipedia.org " in wiki
    with pytest.raises(ValueError, match="plain, bibtex, mediawiki"):
        hit.citation("apa")
    assert STYLES == ("plain", "bibtex", "mediawiki")


def test_citations_escape_the_title_and_invent_nothing(retriever: Retriever) -> None:
    """A title with characters each format gives a meaning to, and a passage without URL, revision or date."""
    bare = replace(
        retriever.get(3), title="50% of A|B {x} & [y]_#1", section="", url=None, revision=None, timestamp=None
    )
    bibtex = bare.citation("bibtex")
    assert bibtex.startswith("@misc{50_of_A_B_x_y_1:p3,\n")
    assert r"title = {{50\% of A|B \{x\} \& [y]\_\#1}}" in bibtex
    assert "url =" not in bibtex and "urldate" not in bibtex and "revision" not in bibtex
    wiki = bare.citation("mediawiki")
    assert wiki.startswith("{{cite web |title=50% of A{{!}}B &#123;x&#125; & &#91;y&#93;_#1 |at=characters ")
    assert "|url=" not in wiki and "|date=" not in wiki and wiki.count("}}") == 2  # {{!}} and the end
    assert "(no URL)" in bare.citation()
