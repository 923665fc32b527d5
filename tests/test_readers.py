"""Corpus readers on the real Wikipedia exports in tests/data/wiki, and on small JSONL/BEIR/Parquet files.

Page counts are checked against an independent count of the raw XML (plain string matching), so a reader that
silently loses pages fails here.
"""

from __future__ import annotations

import bz2
import json
import re
import subprocess
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import AS_A_USER, WIKI

from index_build.documents import CorpusError, Document
from index_build.passages import min_words, split_document
from index_build.readers import FORMATS, Corpus, CorpusStats, detect_format, open_corpus
from index_build.readers.urls import page_url
from index_build.readers.wikitext import DROPPED_SECTIONS, wikitext_to_text

needs_wiki = pytest.mark.needs_data(WIKI)

ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
BENCH = "camchenry-wikidump_benches_enwiki-10k.xml.bz2"
PARTIAL = "camchenry-wikidump_tests_enwiki-articles-partial.xml"
BGWIKI = "bgwiki-latest-pages-articles-shortened.xml.bz2"
ZULKO = "zulko-wiki_dump_extractor_tiny_dump.xml.bz2"
TABLES = "enwiki-table-markup.xml.bz2"
SIMPLE = "camchenry-wikidump_tests_simplewiki.xml.bz2"
# Named, not listed from the folder: a missing folder must not turn the tests over them into an empty set.
WIKI_FILES = sorted([ENWIKI, BENCH, PARTIAL, BGWIKI, ZULKO, TABLES, SIMPLE])

# Markup that must never survive cleaning.
LEFTOVERS = ("{{", "}}", "<ref", "[[", "]]", "<!--", "{|", "|}", "'''", "File:", "Category:")


def raw_xml(path: Path) -> str:
    """The decompressed, decoded XML of an export, read without any of the reader's code."""
    data = path.read_bytes()
    if data[:3] == b"BZh":
        data = bz2.decompress(data)
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    return data.decode(encoding)


def raw_counts(path: Path) -> tuple[int, int, int]:
    """(pages, redirects, namespace-0 pages that are not redirects), by plain string matching."""
    xml = raw_xml(path)
    pages = re.findall(r"<page>.*?</page>", xml, re.DOTALL)
    assert len(pages) == xml.count("<page>")
    redirects = xml.count("<redirect")
    assert redirects == sum("<redirect" in p for p in pages)
    articles = sum("<ns>0</ns>" in p and "<redirect" not in p for p in pages)
    return len(pages), redirects, articles


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[list[Document], CorpusStats]]:
    """Every real export read once, in this process, shared by the tests below."""
    out = {}
    for name in WIKI_FILES:
        corpus = open_corpus(WIKI / name, workers=1)
        out[name] = (list(corpus), corpus.stats)
    return out


@needs_wiki
def test_seven_real_exports_are_present() -> None:
    assert sorted(p.name for p in WIKI.iterdir()) == WIKI_FILES
    assert all(detect_format(WIKI / name) == "mediawiki" for name in WIKI_FILES)


@needs_wiki
@pytest.mark.parametrize("name", WIKI_FILES)
def test_every_page_is_accounted_for(name: str, parsed: dict) -> None:
    docs, stats = parsed[name]
    pages, redirects, articles = raw_counts(WIKI / name)
    assert docs and stats.documents == len(docs)
    assert stats.errors_skipped == 0
    assert stats.total == pages
    assert stats.redirects_skipped == redirects
    # Disambiguation and list-only pages are articles too (namespace 0): read, flagged, and counted as documents.
    assert stats.documents + stats.empty_skipped == articles
    assert stats.other_namespace_skipped == pages - redirects - articles


@needs_wiki
def test_counts_match_the_data_readme(parsed: dict) -> None:
    assert parsed[ENWIKI][1].total == 206 and parsed[ENWIKI][1].redirects_skipped == 100
    assert parsed[BENCH][1].total == 196 and parsed[BENCH][1].redirects_skipped == 97
    assert parsed[ZULKO][1].total == 70 and parsed[ZULKO][1].redirects_skipped == 64
    assert parsed[PARTIAL][1].total == 11


@needs_wiki
@pytest.mark.parametrize("name", WIKI_FILES)
def test_text_is_clean_and_sections_are_spans(name: str, parsed: dict) -> None:
    docs, _ = parsed[name]
    ids = [d.source_id for d in docs]
    assert len(set(ids)) == len(ids)
    for doc in docs:
        for markup in LEFTOVERS:
            assert markup not in doc.text, (doc.title, markup)
        assert doc.text == doc.text.strip() and "\n\n\n" not in doc.text
        assert not re.search(r"^[ \t]|[ \t]$", doc.text, re.MULTILINE), doc.title
        assert doc.sections
        assert doc.sections[0].start == 0 or doc.sections[0].name  # a lead, if any, starts the text
        end = 0
        for i, section in enumerate(doc.sections):
            assert end <= section.start < section.end <= len(doc.text), (doc.title, section)
            body = doc.text[section.start : section.end]
            assert body == body.strip()
            assert section.name or i == 0
            assert section.name.casefold() not in DROPPED_SECTIONS
            end = section.end
        # A heading's line lies between sections, never inside one.
        for prev, nxt in pairwise(doc.sections):
            assert doc.text[nxt.start - len(nxt.name) - 1 : nxt.start] == nxt.name + "\n"
            assert prev.end < nxt.start


@needs_wiki
def test_known_article_metadata(parsed: dict) -> None:
    docs, _ = parsed[ENWIKI]
    anarchism = next(d for d in docs if d.source_id == "12")
    assert anarchism.title == "Anarchism"
    assert anarchism.url == "https://en.wikipedia.org/wiki/Anarchism"
    assert anarchism.revision == "716551092"
    assert anarchism.timestamp == "2016-04-22T10:19:33Z"
    assert anarchism.text.startswith("Anarchism is a political philosophy that advocates self-governed societies")
    names = [s.name for s in anarchism.sections]
    assert names[0] == "" and "Etymology and terminology" in names and "References" not in names
    bench = {d.title: d for d in parsed[BENCH][0]}
    assert bench["Bernard's Watch"].url == "https://en.wikipedia.org/wiki/Bernard%27s_Watch"
    assert bench["Hotel Beauséjour"].url == "https://en.wikipedia.org/wiki/Hotel_Beaus%C3%A9jour"
    simple = parsed["camchenry-wikidump_tests_simplewiki.xml.bz2"][0]
    assert all(d.url and d.url.startswith("https://simple.wikipedia.org/wiki/") for d in simple)


@needs_wiki
def test_formulas_keep_their_tex(parsed: dict) -> None:
    albedo = next(d for d in parsed[ENWIKI][0] if d.title == "Albedo")
    # Once "Albedo can then be given as:" and nothing: the display formula now follows on its own line.
    formula = "{\\alpha}= (1-D) \\bar \\alpha(\\theta_i) + D \\bar{ \\bar \\alpha}."
    assert "Albedo {\\alpha} can then be given as:\n\n" + formula + "\n\n" in albedo.text
    text, _ = wikitext_to_text("Then <math display=\"block\">x^{{2}}  +\n f''(x)</math> and <chem>H2O</chem>.<math/>")
    assert text == "Then\nx^{ {2} } + f' '(x)\nand H2O."  # "}}" and "''" spaced apart: the same TeX, no markup


@needs_wiki
def test_navigation_pages_are_flagged_and_counted(parsed: dict) -> None:
    docs, stats = parsed[ENWIKI]
    kinds = {d.title: d.kind for d in docs}
    # {{Disambiguation}} on all seven, {{Geodis}} on "Aa River"; names-only "List of anthropologists".
    assert stats.disambiguation_flagged == 8 and stats.list_flagged == 1
    assert sum(k == "disambiguation" for k in kinds.values()) == 8
    assert [t for t, k in kinds.items() if k == "list"] == ["List of anthropologists"]
    for title in ("Ada", "Alien", "Austin (disambiguation)", "Aa River"):
        assert kinds[title] == "disambiguation"
    assert kinds["List of Atlas Shrugged characters"] is None  # a list of paragraphs, not of names: prose
    bench = {d.title: d.kind for d in parsed[BENCH][0]}
    assert bench["List of courts in England and Wales"] is None  # half of it paragraphs about the courts
    assert bench["Elgin Theatre"] == bench["Bernard Fisher"] == "disambiguation"  # {{disambig}}; a category
    assert {d.title: d.kind for d in parsed[SIMPLE][0]}["Air"] is None  # a {{dablink}} hatnote: an article
    assert {d.title: d.kind for d in parsed[PARTIAL][0]}["Stockton Airport"] == "disambiguation"


@needs_wiki
@pytest.mark.parametrize("name", WIKI_FILES)
def test_no_passage_is_shorter_than_the_minimum(name: str, parsed: dict) -> None:
    for doc in parsed[name][0]:
        spans = split_document(doc)
        for span in spans:
            text = doc.text[span.start : span.end]
            assert text == text.strip() and text
            assert len(text.split()) >= min_words() or len(spans) == 1, (doc.title, text)
        for section in doc.sections:  # every section's body lies whole in exactly one passage
            words = [m.start() for m in re.finditer(r"\S+", doc.text[section.start : section.end])]
            for offset in words:
                at = section.start + offset
                assert sum(s.start <= at < s.end for s in spans) == 1, (doc.title, section.name)


@needs_wiki
def test_utf16_bulgarian_export(parsed: dict) -> None:
    (doc,), stats = parsed[BGWIKI]
    assert stats.other_namespace_skipped == 2
    assert doc.title == "Григориански календар"
    assert doc.text.startswith("Григорианският календар")
    assert doc.url == "https://bg.wikipedia.org/wiki/" + page_url("", doc.title)
    assert doc.url.startswith("https://bg.wikipedia.org/wiki/%D0%93%D1%80")
    assert "Вижте също" not in [s.name for s in doc.sections]


@needs_wiki
def test_export_without_siteinfo(parsed: dict) -> None:
    docs, _ = parsed[ZULKO]
    assert all(d.url is None for d in docs)
    assert [d.title for d in docs][:1] == ["Anarchism"]
    with_base = open_corpus(WIKI / ZULKO, base_url="https://en.wikipedia.org/wiki", workers=1)
    first = next(iter(with_base))
    assert first.url == "https://en.wikipedia.org/wiki/Anarchism"
    assert first.text == docs[0].text


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("utf16-bom", lambda xml: xml.encode("utf-16")),
        ("utf16be-bom", lambda xml: b"\xfe\xff" + xml.encode("utf-16-be")),
        ("utf16-declared", lambda xml: ('<?xml version="1.0" encoding="UTF-16"?>' + xml).encode("utf-16-le")),
        ("cp1251-declared", lambda xml: ('<?xml version="1.0" encoding="windows-1251"?>\n' + xml).encode("cp1251")),
        ("utf8-bom", lambda xml: b"\xef\xbb\xbf" + xml.encode()),
    ],
)
def test_encodings_without_siteinfo(tmp_path: Path, name: str, encode: Callable[[str], bytes]) -> None:
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">\n'
        "<page><title>София</title><ns>0</ns><id>7</id><revision><id>9</id>"
        "<timestamp>2020-01-01T00:00:00Z</timestamp>"
        "<text>'''София''' е столицата на [[България]].</text></revision></page>\n</mediawiki>\n"
    )
    path = tmp_path / f"{name}.xml"
    path.write_bytes(encode(xml))
    assert detect_format(path) == "mediawiki"
    (doc,) = open_corpus(path, workers=1, base_url="https://bg.wikipedia.org/wiki/")
    assert (doc.source_id, doc.title, doc.revision, doc.timestamp) == ("7", "София", "9", "2020-01-01T00:00:00Z")
    assert doc.text == "София е столицата на България."
    assert doc.url == "https://bg.wikipedia.org/wiki/%D0%A1%D0%BE%D1%84%D0%B8%D1%8F"


@needs_wiki
def test_tables_are_dropped(parsed: dict) -> None:
    docs, _ = parsed[TABLES]
    assert len(docs) == 5
    for doc in docs:
        assert not re.search(r"^\s*[|!]", doc.text, re.MULTILINE)
        assert len(doc.text) > 500


@needs_wiki
def test_workers_give_identical_documents(parsed: dict) -> None:
    corpus = open_corpus(WIKI / ENWIKI, workers=2)
    assert list(corpus) == parsed[ENWIKI][0]
    assert corpus.stats == parsed[ENWIKI][1]


@needs_wiki
def test_stopping_early_shuts_the_pool_down() -> None:
    corpus = open_corpus(WIKI / BENCH, workers=2)
    for doc in corpus:
        assert doc.title
        break
    assert 0 < corpus.stats.documents < 68


def test_wikitext_cleaning() -> None:
    wikitext = """{{Infobox person|name=X}}
'''Aristotle''' ({{IPAc-en|ˈ|æ}}; {{lang|grc|Ἀριστοτέλης}}) was a [[Ancient Greece|Greek]] philosopher<ref>A.</ref>.
He was {{convert|2|m}} tall.<ref name="b" /> [[File:A.jpg|thumb|A [[bust]]]] [[de:Aristoteles]]
<!-- hidden --> __NOTOC__ See [http://example.org the site] and [[:Category:Philosophers]].
{| class="wikitable"
! a !! b
|-
| 1 || 2
|}
== Life ==
=== Early [[life]] ===
Born in [[Stagira]].
== References ==
{{reflist}}
=== Books ===
* A book
== Legacy ==
Read &amp; remembered.
[[Category:Greek philosophers]]
"""
    text, sections = wikitext_to_text(wikitext)
    assert [s.name for s in sections] == ["", "Early life", "Legacy"]
    lead, early, legacy = (text[s.start : s.end] for s in sections)
    assert lead == (
        "Aristotle (Ἀριστοτέλης) was a Greek philosopher.\nHe was 2 m tall.\nSee the site and Philosophers."
    )
    assert early == "Born in Stagira."
    assert legacy == "Read & remembered."
    assert text == lead + "\n\nLife\nEarly life\n" + early + "\n\nLegacy\n" + legacy
    assert wikitext_to_text("{{stub}}\n[[Category:X]]") == ("", ())
    assert wikitext_to_text("[[Категория:Х]] Текст", ["Категория"])[0] == "Текст"


def test_page_urls() -> None:
    base = "https://en.wikipedia.org/wiki/"
    assert page_url(base, "Ender's Game") == base + "Ender%27s_Game"
    assert page_url(base, "AC/DC") == base + "AC/DC"
    assert page_url(base, "C++") == base + "C%2B%2B"
    assert page_url(base, "Star Wars: Episode IV") == base + "Star_Wars:_Episode_IV"
    assert page_url(base, "Q&A (film)") == base + "Q%26A_(film)"


# ---- JSONL, BEIR, Parquet -------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[bytes | dict]) -> Path:
    path.write_bytes(b"".join((json.dumps(x).encode() if isinstance(x, dict) else x) + b"\n" for x in lines))
    return path


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "corpus.jsonl",
        [
            {"id": 1, "title": "One", "text": "First text.", "url": "https://x.org/One"},
            b"",
            {"id": "b", "title": "Two", "text": "Second text."},
            {"id": 3, "title": "Empty", "text": "  "},
        ],
    )
    corpus = open_corpus(path)
    assert corpus.format == "jsonl"
    docs = list(corpus)
    assert [(d.source_id, d.title, d.text, d.url) for d in docs] == [
        ("1", "One", "First text.", "https://x.org/One"),
        ("b", "Two", "Second text.", None),
    ]
    assert docs[0].section_spans()[0].end == len("First text.")
    assert corpus.stats == CorpusStats(documents=2, empty_skipped=1)
    with_base = list(open_corpus(path, base_url="https://en.wikipedia.org/wiki/"))
    assert with_base[1].url == "https://en.wikipedia.org/wiki/Two"


def test_beir_corpus(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "corpus.jsonl",
        [{"_id": "d1", "title": "", "text": "Alpha."}, {"_id": "d2", "title": "T", "text": "Beta.", "metadata": {}}],
    )
    assert detect_format(path) == "beir"
    corpus = open_corpus(path)
    assert corpus.format == "beir"
    assert [(d.source_id, d.title, d.text) for d in corpus] == [("d1", "", "Alpha."), ("d2", "T", "Beta.")]


def test_compressed_jsonl_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl.bz2"
    path.write_bytes(bz2.compress(b'{"id": 1, "title": "A", "text": "Body."}\n'))
    assert detect_format(path) == "jsonl"
    assert [d.text for d in open_corpus(path)] == ["Body."]


@pytest.mark.parametrize(
    ("bad", "why"),
    [(b"{not json", "not valid JSON"), (b'{"id": 2, "text": "caf\xe9"}', "UTF-8"), (b'{"id": 2}', "'text'")],
)
def test_bad_jsonl_line(tmp_path: Path, bad: bytes, why: str) -> None:
    path = write_lines(tmp_path / "c.jsonl", [{"id": 1, "title": "A", "text": "a"}, b"", bad, {"id": 3, "text": "c"}])
    with pytest.raises(CorpusError, match=rf"c\.jsonl, line 3: .*{why}"):
        list(open_corpus(path))
    corpus = open_corpus(path, skip_errors=True)
    assert [d.source_id for d in corpus] == ["1", "3"]
    assert corpus.stats.errors_skipped == 1


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "wiki.parquet"
    table = pa.table(
        {
            "id": ["12", "25", "39"],
            "url": ["https://en.wikipedia.org/wiki/Anarchism", None, "u"],
            "title": ["Anarchism", "Autism", "Albedo"],
            "text": ["Anarchism is a philosophy.", "Autism is a condition.", ""],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    corpus = open_corpus(path)
    assert corpus.format == "parquet"
    docs = list(corpus)
    assert [(d.source_id, d.title, d.url) for d in docs] == [
        ("12", "Anarchism", "https://en.wikipedia.org/wiki/Anarchism"),
        ("25", "Autism", None),
    ]
    assert docs[1].text == "Autism is a condition."
    assert corpus.stats == CorpusStats(documents=2, empty_skipped=1)


def test_parquet_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": [1], "body": ["x"]}), path)
    with pytest.raises(CorpusError, match=r"bad\.parquet lacks the columns title, text"):
        list(open_corpus(path))


# ---- errors ---------------------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus file not found: .*nope.xml"):
        open_corpus(tmp_path / "nope.xml")
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    with pytest.raises(CorpusError, match="is a directory.*corpus.jsonl inside it"):
        open_corpus(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    """In a child held to file permissions (conftest.AS_A_USER): root reads any file."""
    path = tmp_path / "secret.jsonl"
    path.write_text('{"id": 1, "text": "x"}\n')
    path.chmod(0)
    code = AS_A_USER + f"from index_build.readers import open_corpus\nopen_corpus({str(path)!r})\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"CorpusError: cannot read {path}: permission denied" in result.stderr


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(bytes(range(7, 256)) * 4)
    with pytest.raises(CorpusError, match=r"cannot tell the format of .*noise\.bin.*--format") as info:
        open_corpus(path)
    assert "\n" not in str(info.value) and all(f in str(info.value) for f in FORMATS)
    with pytest.raises(CorpusError, match="unknown corpus format 'xml'"):
        open_corpus(path, format="xml")


@needs_wiki
def test_truncated_bz2(tmp_path: Path) -> None:
    data = (WIKI / ENWIKI).read_bytes()
    path = tmp_path / "half.xml.bz2"
    path.write_bytes(data[: len(data) // 2])
    serial = open_corpus(path, workers=1)
    seen: list[Document] = []
    with pytest.raises(CorpusError, match=r"half\.xml\.bz2 is truncated or corrupt \(last page seen: id \d+"):
        seen.extend(serial)
    assert seen and len(seen) == serial.stats.documents
    # With skip_errors the corpus just ends at the break, with the same articles for any number of workers.
    skipping = open_corpus(path, skip_errors=True, workers=2)
    assert list(skipping) == seen
    assert skipping.stats.errors_skipped == 1
    assert skipping.stats.total == serial.stats.total + 1


@needs_wiki
def test_truncated_inside_the_first_bz2_block(tmp_path: Path) -> None:
    path = tmp_path / "tiny.xml.bz2"
    path.write_bytes((WIKI / BENCH).read_bytes()[:50_000])
    with pytest.raises(CorpusError, match=r"tiny\.xml\.bz2 is truncated or corrupt"):
        open_corpus(path)


@needs_wiki
def test_malformed_xml_in_the_middle(tmp_path: Path) -> None:
    xml = (WIKI / PARTIAL).read_text(encoding="utf-8")
    sixth = [m.start() for m in re.finditer("</title>", xml)][5]
    path = tmp_path / "broken.xml"
    path.write_text(xml[:sixth] + "</titel>" + xml[sixth + len("</title>") :], encoding="utf-8")
    with pytest.raises(CorpusError, match=r"broken\.xml has malformed XML \(last page seen: id \d+.*line \d+"):
        list(open_corpus(path, workers=1))
    corpus = open_corpus(path, skip_errors=True, workers=1)
    docs = list(corpus)
    assert docs and corpus.stats.errors_skipped == 1 and corpus.stats.total < 11


def test_only_redirects(tmp_path: Path) -> None:
    path = tmp_path / "redirects.xml"
    path.write_text(
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">'
        "<page><title>AccessibleComputing</title><ns>0</ns><id>10</id>"
        '<redirect title="Computer accessibility"/><revision><id>1</id><timestamp>2024-04-15T14:38:04Z</timestamp>'
        "<text>#REDIRECT [[Computer accessibility]]</text></revision></page>"
        "<page><title>Тест</title><ns>0</ns><id>11</id><revision><id>2</id>"
        "<timestamp>2024-04-15T14:38:04Z</timestamp><text>#пренасочване [[Друго]]</text></revision></page>"
        "<page><title>Talk:X</title><ns>1</ns><id>12</id><revision><id>3</id>"
        "<timestamp>2024-04-15T14:38:04Z</timestamp><text>Talk.</text></revision></page>"
        "</mediawiki>",
        encoding="utf-8",
    )
    corpus = open_corpus(path, workers=1)
    assert isinstance(corpus, Corpus) and corpus.format == "mediawiki"
    with pytest.raises(CorpusError, match=r"no articles found in .*redirects\.xml after skipping 2 redirects, 1 non"):
        list(corpus)
    assert corpus.stats == CorpusStats(redirects_skipped=2, other_namespace_skipped=1)
