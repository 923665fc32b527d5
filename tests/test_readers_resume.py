"""Reading resumes after any document: `Corpus.read(after=stats)` yields exactly the rest of a full pass.

A killed build keeps the documents it stored and the reader's `stats` at the last one; these tests check,
on real dumps and real files of every format, that continuing from such a snapshot gives the same documents
and the same final counts as reading straight through, whatever was skipped in between (redirects, other
namespaces, empty pages, bad records), with and without the cleaning pool.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from index_build.readers import Corpus, CorpusStats, open_corpus


def _snapshots(corpus: Corpus) -> tuple[list[object], list[CorpusStats]]:
    """Every document of a full pass, and `stats` as it stood when each was yielded."""
    documents, snapshots = [], []
    for document in corpus:
        documents.append(document)
        snapshots.append(replace(corpus.stats))
    return documents, snapshots


def _check_resumes_everywhere(corpus: Corpus, points: list[int] | None = None) -> None:
    documents, snapshots = _snapshots(corpus)
    final = replace(corpus.stats)
    assert len(documents) >= 3
    for point in points or range(len(documents) - 1):
        rest = list(corpus.read(after=snapshots[point]))
        assert rest == documents[point + 1 :], f"resuming after document {point}"
        assert corpus.stats == final, f"counts after resuming at document {point}"


@pytest.mark.parametrize("workers", [1, 2])
def test_mediawiki_dump_with_redirects_resumes_after_any_article(wiki_dir: Path, workers: int) -> None:
    # 68 articles among 97 redirects and 31 pages of other namespaces.
    corpus = open_corpus(wiki_dir / "camchenry-wikidump_benches_enwiki-10k.xml.bz2", workers=workers)
    documents, _ = _snapshots(corpus)
    stats = corpus.stats
    assert stats.redirects_skipped > 0 and stats.other_namespace_skipped > 0, stats
    step = max(1, len(documents) // 8)
    _check_resumes_everywhere(corpus, list(range(0, len(documents) - 1, step)) + [len(documents) - 2])


def test_resuming_after_the_last_document_counts_the_trailing_skips(wiki_dir: Path) -> None:
    corpus = open_corpus(wiki_dir / "camchenry-wikidump_tests_enwiki-articles-partial.xml", workers=1)
    _, snapshots = _snapshots(corpus)
    final = replace(corpus.stats)
    assert list(corpus.read(after=snapshots[-1])) == []
    assert corpus.stats == final


def test_jsonl_with_blank_empty_and_bad_lines_resumes(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    lines = [
        {"id": 1, "title": "A", "text": "alpha"},
        "",
        {"id": 2, "title": "B", "text": "  "},
        "{not json",
        {"id": 3, "title": "C", "text": "gamma"},
        {"id": 4, "title": "D", "text": "delta"},
        "",
        {"id": 5, "title": "E", "text": "epsilon"},
    ]
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    corpus = open_corpus(path, skip_errors=True)
    _check_resumes_everywhere(corpus)
    assert corpus.stats.errors_skipped == 1 and corpus.stats.empty_skipped == 1


def test_squad_resumes_after_any_paragraph(tmp_path: Path) -> None:
    path = tmp_path / "squad.json"
    data = [
        {"title": "First", "paragraphs": [{"context": "one"}, {"context": " "}, {"context": "two"}]},
        {"paragraphs": []},  # no title: one bad record
        {"title": "Second", "paragraphs": [{"nope": 1}, {"context": "three"}, {"context": "four"}]},
    ]
    path.write_text(json.dumps({"data": data}))
    corpus = open_corpus(path, format="squad", skip_errors=True)
    _check_resumes_everywhere(corpus)
    assert corpus.stats.errors_skipped == 2 and corpus.stats.empty_skipped == 1


def test_parquet_resumes_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from index_build.readers import parquet

    monkeypatch.setattr(parquet, "BATCH_ROWS", 3)  # several record batches from a small file
    path = tmp_path / "w.parquet"
    texts = ["a b", "", "c d", "e", None, "f g", "h", "i j k"]
    table = pa.table({"id": list(range(len(texts))), "title": [f"T{i}" for i in range(len(texts))], "text": texts})
    pq.write_table(table, path, row_group_size=4)
    corpus = open_corpus(path)
    _check_resumes_everywhere(corpus)
    assert corpus.stats.empty_skipped == 2
