"""The build's passage figures: lengths read back from a real store, merges and flagged pages counted."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from index_build.passage_stats import format_passage_stats, passage_stats
from index_build.passages import split_document
from index_build.read_stage import read_corpora
from index_build.readers import open_corpus
from index_build.store_writer import PROGRESS_TABLE, finish_store, read_checkpoint


def test_figures_of_a_real_store(tmp_path: Path, corpus_xml: Path) -> None:
    store = tmp_path / "passages.sqlite"
    corpus = open_corpus(corpus_xml, workers=1)
    result = read_corpora([corpus], store, 100, progress=False)
    finish_store(store)
    # The merges counted while writing are the splitter's, recounted here from the documents themselves.
    spans = [split_document(d) for d in open_corpus(corpus_xml, workers=1)]
    assert result.passages_merged == sum(s.pieces - 1 for doc in spans for s in doc) > 0
    stats = passage_stats(store, 100, result.passages_merged, result.reader_stats)
    with closing(sqlite3.connect(store)) as conn:
        lengths = sorted(len(t) for (t,) in conn.execute("SELECT text FROM passages"))
    assert stats["passages"] == len(lengths) == sum(map(len, spans))
    assert (stats["chars"]["min"], stats["chars"]["p50"], stats["chars"]["max"]) == (
        lengths[0],
        lengths[(len(lengths) + 1) // 2 - 1],  # the nearest-rank median: a length some passage has
        lengths[-1],
    )
    assert list(stats["words"].values()) == sorted(stats["words"].values())
    assert stats["min_words"] == 20 and stats["words"]["min"] >= 20 and stats["under_min_words"] == 0
    # Bernard Fisher, Dog walking (disambiguation), Arroyo Seco Bridge, Elgin Theatre.
    assert stats["flagged"] == {"disambiguation": 4, "list": 0}
    with closing(sqlite3.connect(store)) as conn:
        kinds = dict(conn.execute("SELECT title, kind FROM documents WHERE kind IS NOT NULL").fetchall())
    menus = ("Bernard Fisher", "Dog walking (disambiguation)", "Arroyo Seco Bridge", "Elgin Theatre")
    assert kinds == dict.fromkeys(menus, "disambiguation")
    table = format_passage_stats(stats)
    assert table.splitlines()[0].split()[2:] == ["min", "p1", "p5", "p25", "p50", "p75", "p95", "p99", "max"]
    assert f"merged into a neighbour: {result.passages_merged}" in table and "4 disambiguation" in table


def test_a_store_written_before_merges_were_counted_still_resumes(tmp_path: Path, partial_xml: Path) -> None:
    store = tmp_path / "passages.sqlite.partial"
    read_corpora([open_corpus(partial_xml, workers=1)], store, 100, progress=False)
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(f"ALTER TABLE {PROGRESS_TABLE} DROP COLUMN merged")  # the table as older builds wrote it
    checkpoint = read_checkpoint(store)
    assert checkpoint is not None and checkpoint.complete and checkpoint.counts.merged == 0
    assert checkpoint.counts.passages > 0
