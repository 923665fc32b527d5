"""The SQuAD corpus reader on the real SQuAD v1.1 dev file (part a): one document per paragraph, verbatim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SQUAD

from evaluation import read_questions
from index_build.documents import CorpusError
from index_build.readers import detect_format, open_corpus

needs_squad = pytest.mark.needs_data(SQUAD)


@pytest.fixture(scope="module")
def squad() -> dict:
    return json.loads(SQUAD.read_text(encoding="utf-8"))


@needs_squad
def test_one_document_per_paragraph_verbatim(squad: dict) -> None:
    corpus = open_corpus(SQUAD)
    documents = list(corpus)
    assert corpus.format == "squad"
    assert len(documents) == 1023 and corpus.stats.documents == 1023 and corpus.stats.total == 1023
    first = documents[0]
    assert first.text == squad["data"][0]["paragraphs"][0]["context"]
    assert (first.source_id, first.title, first.url) == (
        "0.0",
        "Super Bowl 50",
        "https://en.wikipedia.org/wiki/Super_Bowl_50",
    )
    assert len(first.sections) == 1 and (first.sections[0].start, first.sections[0].end) == (0, len(first.text))
    contexts = [p["context"] for article in squad["data"] for p in article["paragraphs"]]
    assert [d.text for d in documents] == contexts
    assert len({d.source_id for d in documents}) == 1023
    sky = next(d for d in documents if d.title.startswith("Sky"))
    assert sky.title == "Sky (United Kingdom)" and sky.url == "https://en.wikipedia.org/wiki/Sky_(United_Kingdom)"


@needs_squad
def test_gold_documents_of_the_questions_are_the_paragraph_ids(squad: dict) -> None:
    ids = {d.source_id: d.text for d in open_corpus(SQUAD)}
    questions = read_questions(SQUAD)
    assert len(questions) == 5397
    for question in questions:
        (gold,) = question.gold_documents
        # SQuAD's answers are spans of their paragraph: the gold id must point at the paragraph holding them.
        assert any(answer in ids[gold] for answer in question.answers), question


@needs_squad
def test_detection_and_explicit_format(tmp_path: Path, squad: dict) -> None:
    assert detect_format(SQUAD) == "squad"
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"data": squad["data"][:1], "version": "1.1"}, indent=2), encoding="utf-8")
    assert detect_format(pretty) == "squad"
    documents = list(open_corpus(pretty, format="squad", base_url="https://example.org/w"))
    assert len(documents) == 54 and documents[0].url == "https://example.org/w/Super_Bowl_50"
    # A JSONL record that only mentions SQuAD's keys in its text is still JSONL.
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text(json.dumps({"id": 1, "text": 'say "data": [ and "paragraphs": [ here'}) + "\n", encoding="utf-8")
    assert detect_format(jsonl) == "jsonl"


def test_malformed_files_are_one_line_errors(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.json"
    truncated.write_text(
        '{"version": "1.1", "data": [{"title": "X", "paragraphs": [{"context": "abc"', encoding="utf-8"
    )
    with pytest.raises(CorpusError, match=r"truncated\.json is not valid SQuAD JSON") as info:
        list(open_corpus(truncated, format="squad"))
    assert "\n" not in str(info.value)

    no_context = tmp_path / "no-context.json"
    data = {"data": [{"title": "A_b", "paragraphs": [{"context": "first"}, {"qas": []}, {"context": "third"}]}]}
    no_context.write_text(json.dumps(data), encoding="utf-8")
    assert detect_format(no_context) == "squad"
    with pytest.raises(CorpusError, match=r'data\[0\]\.paragraphs\[1\] has no "context" string') as info:
        list(open_corpus(no_context))
    assert "\n" not in str(info.value)
    corpus = open_corpus(no_context, skip_errors=True)
    documents = list(corpus)
    # The ids are positions in the file, so skipping a bad paragraph moves no other id.
    assert [d.source_id for d in documents] == ["0.0", "0.2"] and documents[0].title == "A b"
    assert corpus.stats.errors_skipped == 1

    not_squad = tmp_path / "other.json"
    not_squad.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(CorpusError, match='expected a JSON object with a "data" list'):
        list(open_corpus(not_squad, format="squad"))
