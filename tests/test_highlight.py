"""Answer highlighting on a real index with the real model: offsets into the verbatim text, never new text.

Every hit of every mode, for ordinary and hostile queries, carries a span that lies inside its passage; a
known question picks the sentence a reader would; the CLI, the JSON and the page show that span.
"""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import CORPUS_QUESTIONS
from fastapi.testclient import TestClient
from markupsafe import escape
from test_hybrid import HOSTILE  # the same hostile queries every search mode is put through
from typer.testing import CliRunner

from groundsearch.cli import app
from groundsearch.terminal import wrap_highlighted
from retriever import MODES, Hit, InvalidQuery, Retriever, Span
from retriever.bundle import STORE_NAME
from retriever.highlight import (
    CLAUSE_CHARS,
    SCORERS,
    Highlighter,
    best,
    candidate_spans,
    lexical_scores,
    sentence_spans,
)
from web import create_app

runner = CliRunner()
FORAMEN = "who closes the foramen ovale at birth"
# The second sentence of its passage (Fetal circulation), not the first: the highlight is no lead baseline.
FORAMEN_SENTENCE = "This leads to the closure of the foramen ovale, which is then referred to as the fossa ovalis."
BODYGUARD = "former Haitian army major who was bodyguard of Aristide"
BODYGUARD_SENTENCE = "Toussaint is a former Haitian Army major, police chief and bodyguard of Jean-Bertrand Aristide."


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


@pytest.fixture(scope="module")
def all_texts(small_index: Path) -> list[str]:
    with sqlite3.connect(f"{(small_index / STORE_NAME).resolve().as_uri()}?mode=ro", uri=True) as conn:
        return [text for (text,) in conn.execute("SELECT text FROM passages ORDER BY id")]


def assert_inside(hit: Hit) -> None:
    span = hit.highlight
    if not hit.text.strip():
        assert span is None
        return
    assert span is not None, hit.passage_id
    assert 0 <= span.start < span.end <= len(hit.text)
    marked = hit.text[span.start : span.end]
    assert marked and marked in hit.text and marked == marked.strip() and hit.highlighted_text == marked
    in_article = hit.highlight_in_article
    assert in_article is not None and hit.start <= in_article.start < in_article.end <= hit.end
    assert hit.to_dict()["highlight"] == {"start": span.start, "end": span.end}


# --- the library ------------------------------------------------------------------------------------------------


QUERIES = [FORAMEN, BODYGUARD, "the of and", "gunpowder", *HOSTILE]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
def test_every_highlight_lies_inside_its_passage(retriever: Retriever, mode: str, query: str) -> None:
    try:
        hits = retriever.search(query, k=5, mode=mode)
    except InvalidQuery:
        return  # test_hybrid checks these are clean; here only the hits that come back matter
    for hit in hits:
        assert_inside(hit)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("query,sentence", [(FORAMEN, FORAMEN_SENTENCE), (BODYGUARD, BODYGUARD_SENTENCE)])
def test_a_known_question_marks_the_sentence_that_answers_it(
    retriever: Retriever, mode: str, query: str, sentence: str
) -> None:
    hit = next(h for h in retriever.search(query, k=5, mode=mode) if sentence in h.text)
    assert hit.highlighted_text == sentence
    assert not hit.text.startswith(sentence)  # not simply the first sentence


def test_search_batch_highlights_like_search_and_can_be_turned_off(retriever: Retriever) -> None:
    queries = [FORAMEN, BODYGUARD]
    # Compared by passage and span: batched encoding may move dense scores in the last float digits.
    batched = [[(h.passage_id, h.highlight) for h in row] for row in retriever.search_batch(queries, k=3)]
    assert batched == [[(h.passage_id, h.highlight) for h in retriever.search(q, k=3)] for q in queries]
    plain = retriever.search(FORAMEN, k=3, highlight=False)
    assert plain and all(h.highlight is None and h.highlighted_text is None for h in plain)
    assert [h.text for h in plain] == [h.text for h in retriever.search(FORAMEN, k=3)]
    # Hits searched without highlights (e.g. to rerank them first) can be highlighted afterwards.
    assert retriever.highlighted([FORAMEN], [plain]) == [retriever.search(FORAMEN, k=3)]
    fetched = retriever.get(plain[0].passage_id)
    assert fetched.highlight is None and fetched.to_dict()["highlight"] is None


def test_cached_highlights_equal_the_plain_definition(retriever: Retriever) -> None:
    """The highlighter analyses each passage once and scores only the spans holding a query term; its choice
    must be exactly the documented one: the span with the largest share of the query's IDF mass, earliest on
    a tie. Asked twice, so the second answers come from the cache."""
    queries = [FORAMEN, BODYGUARD, *CORPUS_QUESTIONS, "the of and", "Virginia Virginia gunpowder 1775"]
    highlighter = retriever.highlighter
    for _ in range(2):
        for query, row in zip(queries, retriever.search_batch(queries, k=10, mode="hybrid"), strict=True):
            weights = highlighter.query_weights(query)
            total = sum(weights.values()) or 1.0
            for hit in row:
                candidates = candidate_spans(hit.text)
                scores = [w / total for w in lexical_scores(weights, highlighter.span_terms(hit.text, candidates))]
                assert hit.highlight == Span(*candidates[best(scores)])


@pytest.mark.parametrize("scorer", SCORERS)
def test_every_scorer_gives_spans_inside_the_passage(retriever: Retriever, scorer: str) -> None:
    highlighter = Highlighter(retriever._encoder, retriever._lexical, scorer)
    hits = retriever.search(FORAMEN, k=5, highlight=False)
    (spans,) = highlighter.highlight_batch([FORAMEN], [[h.text for h in hits]])
    for hit, span in zip(hits, spans, strict=True):
        assert span is not None and 0 <= span.start < span.end <= len(hit.text)
    assert FORAMEN_SENTENCE in [span.of(h.text) for h, span in zip(hits, spans, strict=True) if span]
    # Without a BM25 side (a dense-only index) the terms count equally, and a highlight is still chosen.
    (unweighted,) = Highlighter(retriever._encoder, None, scorer).highlight_batch([FORAMEN], [[hits[0].text]])
    assert unweighted[0] is not None


def test_candidates_tile_every_real_passage(all_texts: list[str]) -> None:
    """Sentences and clauses are in order, disjoint, trimmed, and leave out nothing but whitespace."""
    for text in all_texts:
        for spans in (sentence_spans(text), candidate_spans(text, CLAUSE_CHARS), candidate_spans(text, 60)):
            assert spans or not text.strip()
            covered = set()
            for (s, e), nxt in zip(spans, [*spans[1:], None], strict=True):
                assert 0 <= s < e <= len(text) and text[s:e] == text[s:e].strip()
                assert nxt is None or e <= nxt[0]
                covered.update(range(s, e))
            assert all(ch.isspace() for i, ch in enumerate(text) if i not in covered)


def test_the_splitter_keeps_abbreviations_and_initials_inside_a_sentence() -> None:
    text = (
        "Dr. Smith joined the U.S. Army c. 1940 in St. Louis.  J. R. R. Tolkien wrote it, approx. 3.5 times. "
        'Did he? "Yes!" he said. It grew by 2.5. Then it fell to 1. Next.\nA line without a stop\n\n  Last one'
    )
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Dr. Smith joined the U.S. Army c. 1940 in St. Louis.",
        "J. R. R. Tolkien wrote it, approx. 3.5 times.",
        "Did he?",
        '"Yes!" he said.',
        "It grew by 2.5.",
        "Then it fell to 1.",
        "Next.",
        "A line without a stop",
        "Last one",
    ]
    assert sentence_spans("") == [] and sentence_spans(" \n\t ") == []


# --- the CLI ----------------------------------------------------------------------------------------------------


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_cli_prints_the_passage_verbatim_and_emphasises_the_span(small_index: Path, retriever: Retriever) -> None:
    args = ["query", str(small_index), FORAMEN, "-k", "2"]
    plain = runner.invoke(app, args)  # not a terminal: no styles at all
    assert plain.exit_code == 0, plain.output
    assert "\x1b[" not in plain.stdout and _words(FORAMEN_SENTENCE) in _words(plain.stdout)
    for hit in retriever.search(FORAMEN, k=2):
        assert _words(hit.text) in _words(plain.stdout)  # wrapped and indented, every character kept
    coloured = runner.invoke(app, args, color=True)
    assert coloured.exit_code == 0 and "\x1b[1m\x1b[4m" in coloured.stdout
    assert click.unstyle(coloured.stdout) == plain.stdout  # the styles are all that colour adds
    emphasised = re.findall(r"\x1b\[1m\x1b\[4m(.*?)\x1b\[0m", coloured.stdout)
    top = retriever.search(FORAMEN, k=1)[0]
    assert _words(" ".join(emphasised)).startswith(_words(top.highlighted_text or ""))


def test_the_cli_json_carries_the_offsets(small_index: Path, retriever: Retriever) -> None:
    result = runner.invoke(app, ["query", str(small_index), BODYGUARD, "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    expected = retriever.search(BODYGUARD, k=3)
    assert [h["highlight"] for h in hits] == [{"start": h.highlight.start, "end": h.highlight.end} for h in expected]  # type: ignore[union-attr]
    top = hits[0]
    assert top["text"][top["highlight"]["start"] : top["highlight"]["end"]] == BODYGUARD_SENTENCE


@pytest.mark.parametrize(
    "text",
    [
        "One sentence here. The marked one is this, with words that run on and on past the width. Then a tail.",
        "Tabs\tand\nline breaks\n\nand  double  spaces. The marked\tone\nspans them. End.",
        "A supercalifragilisticexpialidociousword-with-hyphens-that-is-longer-than-the-width. Next one.",
        "Non-breaking\u00a0spaces, émoji 🙂 and RTL فندق stay. The marked one: الأمير إدوارد. End.",
    ],
)
def test_wrapping_with_emphasis_changes_nothing_but_styles(text: str) -> None:
    s, e = sentence_spans(text)[1]
    styled = wrap_highlighted(text, Span(s, e), width=30)
    assert click.unstyle(styled) == textwrap.fill(text, width=30, initial_indent="    ", subsequent_indent="    ")
    emphasised = re.findall(r"\x1b\[1m\x1b\[4m(.*?)\x1b\[0m", styled)
    assert "".join("".join(emphasised).split()) == "".join(text[s:e].split())
    assert wrap_highlighted(text, None, width=30) == click.unstyle(styled)


# --- the web ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(retriever: Retriever) -> Iterator[TestClient]:
    with TestClient(create_app(retriever)) as c:
        yield c


def test_the_api_carries_the_offsets(client: TestClient, retriever: Retriever) -> None:
    body = client.get("/api/search", params={"q": FORAMEN, "k": 3}).json()
    for hit, expected in zip(body["hits"], retriever.search(FORAMEN, k=3), strict=True):
        assert expected.highlight is not None
        assert hit["highlight"] == {"start": expected.highlight.start, "end": expected.highlight.end}
        assert hit["text"][hit["highlight"]["start"] : hit["highlight"]["end"]] == expected.highlighted_text
    spec = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(spec["Highlight"]["properties"]) == {"start", "end"}
    assert "highlight" not in client.get(f"/api/passages/{body['hits'][0]['passage_id']}").json()


def test_the_page_marks_the_span_escaped_in_place(client: TestClient, retriever: Retriever) -> None:
    html = client.get("/", params={"q": FORAMEN, "k": "3"}).text
    for hit in retriever.search(FORAMEN, k=3):
        assert hit.highlight is not None
        s, e = hit.highlight.start, hit.highlight.end
        marked = f'{escape(hit.text[:s])}<mark class="answer" '
        assert marked in html
        assert f">{escape(hit.text[s:e])}</mark>{escape(hit.text[e:])}</blockquote>" in html
    assert f">{escape(FORAMEN_SENTENCE)}</mark>" in html
