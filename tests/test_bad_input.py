"""Bad input: a clear one-line error, a non-zero exit, and no finished-looking index left behind."""

from __future__ import annotations

import bz2
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import cli_build, nothing_left

from index_build import BuildError, BuildOptions, CorpusError, RunOptions, build_index
from retriever import IndexCorrupt, IndexNotFound, ModelMismatch, Retriever
from retriever.bundle import FAISS_NAME, MANIFEST_NAME, STORE_NAME

QUIET = RunOptions(progress=False, workers=1)


def test_missing_file(tmp_path: Path) -> None:
    code, err = cli_build(str(tmp_path / "nope.xml.bz2"), "--out", str(tmp_path / "x.idx"))
    assert code == 1 and "nope.xml.bz2" in err and len(err.strip().splitlines()) == 1
    assert nothing_left(tmp_path / "x.idx")


def test_unknown_format(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 10)
    code, err = cli_build(str(junk), "--out", str(tmp_path / "x.idx"))
    assert code == 1 and "junk.bin" in err and "--format" in err
    assert nothing_left(tmp_path / "x.idx")


def test_truncated_bz2_names_the_file(tmp_path: Path, wiki_dir: Path) -> None:
    real = (wiki_dir / "camchenry-wikidump_benches_enwiki-10k.xml.bz2").read_bytes()
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(real[: len(real) // 2])
    code, err = cli_build(str(cut), "--out", str(tmp_path / "x.idx"))
    assert code == 1 and "cut.xml.bz2" in err and "Traceback" not in err
    assert nothing_left(tmp_path / "x.idx")


def test_malformed_xml_in_the_middle(tmp_path: Path, partial_xml: Path) -> None:
    text = partial_xml.read_text(encoding="utf-8")
    middle = text.index("<page>", len(text) // 2)
    broken = tmp_path / "broken.xml"
    broken.write_text(text[:middle] + "<page><title>Broken</tite>" + text[middle + 6 :], encoding="utf-8")
    code, err = cli_build(str(broken), "--out", str(tmp_path / "x.idx"))
    assert code == 1 and "broken.xml" in err
    assert nothing_left(tmp_path / "x.idx")


def test_bad_jsonl_line_names_the_line(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(b'{"id": "1", "title": "A", "text": "Some text here."}\n{not json\n')
    code, err = cli_build(str(corpus), "--out", str(tmp_path / "x.idx"))
    assert code == 1 and "line 2" in err
    assert nothing_left(tmp_path / "x.idx")


def test_no_articles_after_filtering(tmp_path: Path) -> None:
    only_redirect = tmp_path / "r.xml.bz2"
    only_redirect.write_bytes(
        bz2.compress(
            b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10"><page><title>A</title>'
            b'<ns>0</ns><id>1</id><redirect title="B" /><revision><id>2</id><timestamp>2020-01-01T00:00:00Z'
            b'</timestamp><model>wikitext</model><format>text/x-wiki</format><text xml:space="preserve">'
            b"#REDIRECT [[B]]</text></revision></page></mediawiki>"
        )
    )
    with pytest.raises(CorpusError, match="no articles"):
        build_index([only_redirect], tmp_path / "x.idx", run=QUIET)
    assert nothing_left(tmp_path / "x.idx")


def test_finished_index_is_not_overwritten_without_force(tmp_path: Path, small_index: Path, partial_xml: Path) -> None:
    out = tmp_path / "copy.idx"
    shutil.copytree(small_index, out)
    before = (out / MANIFEST_NAME).read_bytes()
    code, err = cli_build(str(partial_xml), "--out", str(out))
    assert code == 1 and "--force" in err
    assert (out / MANIFEST_NAME).read_bytes() == before


def test_out_that_is_some_other_directory_is_refused(tmp_path: Path, partial_xml: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(BuildError, match="not an index"):
        build_index([partial_xml], out, run=QUIET)
    assert (out / "precious.txt").read_text() == "keep me"


def test_unfinished_build_with_other_options_is_refused(tmp_path: Path, partial_xml: Path) -> None:
    out = tmp_path / "x.idx"
    code, err = cli_build(str(partial_xml), "--out", str(out), "--model", str(tmp_path / "no-such-model"))
    assert code == 1 and "no-such-model" in err
    assert not out.exists() and out.with_name("x.idx.partial").is_dir()  # the read stage is kept for a resume
    code, err = cli_build(str(partial_xml), "--out", str(out), "--passage-words", "50")
    assert code == 1 and "unfinished build with other options" in err and "--passage-words was 100, now 50" in err


def test_another_model_is_refused_at_query_time(tmp_path: Path, partial_xml: Path, tiny_model: Path) -> None:
    out = tmp_path / "tiny.idx"
    build_index([partial_xml], out, BuildOptions(model=str(tiny_model)), QUIET)
    assert Retriever.open(out).search("airport", k=1)  # the manifest's own model opens it
    with pytest.raises(ModelMismatch, match="not the model the index was built with"):
        Retriever.open(out, model="sentence-transformers/all-MiniLM-L6-v2")


def test_not_an_index_and_corrupt_files(tmp_path: Path, small_index: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IndexNotFound, match="manifest.json is missing"):
        Retriever.open(empty)
    broken = tmp_path / "broken.idx"
    shutil.copytree(small_index, broken)
    faiss_file = broken / FAISS_NAME
    data = faiss_file.read_bytes()
    faiss_file.write_bytes(b"\0" * len(data))  # same size, garbage inside
    with pytest.raises(IndexCorrupt, match="unreadable FAISS index"):
        Retriever.open(broken)
    faiss_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorrupt, match="the manifest says"):
        Retriever.open(broken)
    faiss_file.unlink()
    with pytest.raises(IndexCorrupt, match="missing"):
        Retriever.open(broken)


def _jsonl(tmp_path: Path, bad: str) -> Path:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        '{"id": "1", "title": "A", "text": "Aristotle wrote the Nicomachean Ethics."}\n'
        f"{bad}\n"
        '{"id": "3", "title": "C", "text": "Albedo is the fraction of light a surface reflects."}\n',
        encoding="utf-8",
    )
    return corpus


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ('{"id": "2", "title": "B", "text": "lone \\ud800 surrogate"}', "text"),
        ('{"id": "2", "title": "B\\udfff", "text": "a title with a lone low surrogate"}', "title"),
        ('{"id": "2\\ud83d", "title": "B", "text": "half of an emoji in the id"}', "source_id"),
    ],
)
def test_lone_surrogate_is_a_bad_record(tmp_path: Path, tiny_model: Path, record: str, field: str) -> None:
    """Valid JSON, not valid Unicode: an error naming the line without --skip-errors, skipped and counted with."""
    corpus = _jsonl(tmp_path, record)
    out = tmp_path / "x.idx"
    code, err = cli_build(str(corpus), "--out", str(out), "--model", str(tiny_model))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"error: {corpus}, line 2: record " in err and "has a lone surrogate" in err and f"of its {field}" in err
    assert "use --skip-errors" in err
    assert not out.exists() and not out.with_name("x.idx.partial").exists()

    code, err = cli_build(str(corpus), "--out", str(out), "--model", str(tiny_model), "--skip-errors")
    assert code == 0 and "warning: 1 malformed pages or lines were skipped" in err
    with sqlite3.connect(out / STORE_NAME) as db:
        assert db.execute("SELECT source_id, title FROM documents ORDER BY id").fetchall() == [("1", "A"), ("3", "C")]
        texts = [t for (t,) in db.execute("SELECT text FROM passages ORDER BY id")]
    assert texts == [
        "Aristotle wrote the Nicomachean Ethics.",
        "Albedo is the fraction of light a surface reflects.",
    ]


def test_lone_surrogate_in_a_squad_paragraph(tmp_path: Path, tiny_model: Path) -> None:
    corpus = tmp_path / "squad.json"
    corpus.write_text(
        '{"data": [{"title": "Albedo", "paragraphs": [{"context": "Albedo is reflectivity.", "qas": []}, '
        '{"context": "bad \\udc80 byte", "qas": []}]}]}',
        encoding="utf-8",
    )
    out = tmp_path / "x.idx"
    code, err = cli_build(str(corpus), "--out", str(out), "--model", str(tiny_model), "--format", "squad")
    assert code == 1 and "data[0].paragraphs[1] ('Albedo') has a lone surrogate" in err and "--skip-errors" in err
    code, err = cli_build(
        str(corpus), "--out", str(out), "--model", str(tiny_model), "--format", "squad", "--skip-errors"
    )
    assert code == 0 and "1 malformed" in err
