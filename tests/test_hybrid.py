"""Dense, lexical and hybrid search on a real index built with the real model; nothing is mocked.

The lexical side is a real tantivy index inside the bundle. Hostile queries go through every mode: each must
give hits or `InvalidQuery`, never a crash and never a query-syntax error from the engine.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import retriever.lexical as lexical_module
from groundsearch.cli import app
from index_build import BuildOptions, RunOptions, build_index
from retriever import MODES, Fusion, IndexCorrupt, InvalidQuery, Retriever
from retriever.lexical import LEXICAL_DIR, LexicalIndex

HOTEL = "hotel in Prince Edward Island"
runner = CliRunner()

HOSTILE = [
    '"',
    '"unbalanced quote',
    "AND",
    "OR NOT AND",
    "hotel AND NOT charlottetown",
    "*",
    "hotel*",
    "NEAR(",
    "NEAR(hotel charlottetown, 2)",
    "-",
    "- hotel",
    "title:hotel",
    "text:(a OR b",
    "(a OR b",
    "{}[]^~:\\/!",
    "hotel " * 2000,  # 12,000 characters, past every limit
    "🏨 🇨🇦 hotel 🙂",
    "فندق في جزيرة الأمير إدوارد",  # RTL text
    "\u202ehotel\u202c",  # a right-to-left override around a word
    "hotel \ud800 island",  # a lone surrogate, which JSON can carry and UTF-8 cannot
    "\x00\x01 hotel",
]


@pytest.fixture(scope="module")
def retriever(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


def test_an_index_built_by_default_has_all_three_modes(retriever: Retriever) -> None:
    assert retriever.modes == MODES and retriever.default_mode == "hybrid"
    lexical = retriever.manifest.lexical
    assert lexical is not None and lexical["engine"] == "tantivy" and lexical["directory"] == LEXICAL_DIR
    # Every file of the lexical index is in the manifest, so a missing or truncated one is caught at open.
    assert any(name.startswith(f"{LEXICAL_DIR}/") for name in retriever.manifest.files)
    assert retriever.search(HOTEL, k=5) == retriever.search(HOTEL, k=5, mode="hybrid")


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_returns_verbatim_passages_with_their_finders(retriever: Retriever, mode: str) -> None:
    hits = retriever.search(HOTEL, k=5, mode=mode)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and hits[0].title == "Hotel Charlottetown"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    for hit in hits:
        assert hashlib.sha256(hit.text.encode("utf-8")).hexdigest() == hit.sha256
        assert hit.text == retriever.get(hit.passage_id).text
        finders = [f.retriever for f in hit.found_by]
        assert finders == ([mode] if mode != "hybrid" else [f for f in ("dense", "lexical") if f in finders])
        assert finders
        if mode != "hybrid":
            assert hit.found_by[0].rank == hit.rank and hit.found_by[0].score == hit.score


def test_found_by_ranks_are_the_single_retrievers_ranks(retriever: Retriever) -> None:
    depth = Fusion().depth
    dense = [h.passage_id for h in retriever.search(HOTEL, k=depth, mode="dense")]
    lexical = [h.passage_id for h in retriever.search(HOTEL, k=depth, mode="lexical")]
    for hit in retriever.search(HOTEL, k=20, mode="hybrid"):
        for name, ranking in (("dense", dense), ("lexical", lexical)):
            expected = ranking.index(hit.passage_id) + 1 if hit.passage_id in ranking else None
            assert hit.rank_in(name) == expected, (hit.passage_id, name)
    # Hybrid scores are min-max normalised and weighted: the fused score stays in [0, 1].
    assert all(0.0 <= (h.score or 0.0) <= 1.0 for h in retriever.search(HOTEL, k=20))


def test_query_operators_are_just_words(retriever: Retriever) -> None:
    """Quotes, `*`, field names and parentheses change nothing: the engine never sees a query language."""

    def lexical(q: str) -> list[int]:
        return [h.passage_id for h in retriever.search(q, k=10, mode="lexical")]

    plain = lexical("Charlottetown hotel")
    assert plain and retriever.get(plain[0]).title == "Hotel Charlottetown"
    dressed_up = (
        '"Charlottetown hotel"',
        "Charlottetown* hotel",
        "(Charlottetown OR hotel",
        "text:Charlottetown hotel",
    )
    for dressed in dressed_up:
        # "or" is a stop word and "text" a word no passage here holds: the same terms, the same hits.
        assert lexical(dressed) == plain, dressed
    assert lexical("Charlottetown AND NOT hotel") == lexical("Charlottetown hotel not and")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_give_hits_or_a_clean_error(retriever: Retriever, mode: str, query: str) -> None:
    try:
        hits = retriever.search(query, k=5, mode=mode)
    except InvalidQuery as exc:
        assert "\n" not in str(exc)
        return
    assert len(hits) <= 5
    if mode != "lexical":
        assert len(hits) == 5  # the dense side always has neighbours
    for hit in hits:
        assert hit.text == retriever.get(hit.passage_id).text


def test_a_query_with_no_words_finds_nothing_lexically(retriever: Retriever) -> None:
    assert retriever.search('" * ( - :', k=5, mode="lexical") == []
    assert retriever.search("the of and", k=5, mode="lexical") == []  # only stop words
    assert len(retriever.search("the of and", k=5, mode="hybrid")) == 5  # the dense side still answers


def test_unknown_mode_is_invalid_query(retriever: Retriever) -> None:
    with pytest.raises(InvalidQuery, match="unknown search mode 'fuzzy'; the modes are dense, lexical, hybrid"):
        retriever.search(HOTEL, mode="fuzzy")


@pytest.fixture(scope="module")
def dense_only(tmp_path_factory: pytest.TempPathFactory, partial_xml: Path) -> Path:
    out = tmp_path_factory.mktemp("dense-only") / "partial.idx"
    build_index([partial_xml], out, BuildOptions(lexical=False), RunOptions(progress=False, workers=1))
    return out


def test_an_index_built_without_lexical_offers_dense_only(dense_only: Path) -> None:
    r = Retriever.open(dense_only)
    assert r.manifest.lexical is None and not (dense_only / LEXICAL_DIR).exists()
    assert r.modes == ("dense",) and r.default_mode == "dense"
    assert r.search("airport", k=2) == r.search("airport", k=2, mode="dense")
    for mode in ("lexical", "hybrid"):
        with pytest.raises(InvalidQuery, match="has no lexical index"):
            r.search("airport", mode=mode)
    result = runner.invoke(app, ["query", str(dense_only), "airport", "--mode", "hybrid"])
    assert result.exit_code == 1 and "has no lexical index" in result.stderr


def test_a_read_only_lexical_index_opens_through_a_shadow(
    small_index: Path, retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tantivy writes a lock file even to read; a bundle it cannot write to is read through symlinks."""
    directory = small_index / LEXICAL_DIR
    before = sorted(p.name for p in directory.iterdir())
    monkeypatch.setattr(lexical_module, "_lock_writable", lambda _directory: False)
    shadowed = LexicalIndex(directory)
    assert shadowed._shadow is not None and len(shadowed) == len(retriever)
    assert shadowed.search(HOTEL, 10) == retriever.lexical_candidates([HOTEL], 10)[0]
    assert sorted(p.name for p in directory.iterdir()) == before  # nothing written into the bundle


@pytest.mark.parametrize("damage", ["delete-segment", "delete-meta", "truncate"])
def test_a_damaged_lexical_index_is_refused_at_open(small_index: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "copy.idx"
    shutil.copytree(small_index, copy)
    files = sorted(p for p in (copy / LEXICAL_DIR).iterdir() if p.is_file() and not p.name.startswith("."))
    if damage == "delete-meta":
        (copy / LEXICAL_DIR / "meta.json").unlink()
    elif damage == "delete-segment":
        next(p for p in files if p.suffix == ".idx").unlink()
    else:
        biggest = max(files, key=lambda p: p.stat().st_size)
        biggest.write_bytes(biggest.read_bytes()[:-10])
    with pytest.raises(IndexCorrupt, match="rebuild the index"):
        Retriever.open(copy)


def test_the_cli_prints_mode_and_finders(small_index: Path) -> None:
    result = runner.invoke(app, ["query", str(small_index), HOTEL, "-k", "2", "--mode", "lexical"])
    assert result.exit_code == 0, result.output
    assert "Hotel Charlottetown" in result.stdout and "lexical #1" in result.stdout and "dense #" not in result.stdout
    result = runner.invoke(app, ["query", str(small_index), HOTEL, "-k", "1", "--json"])
    assert result.exit_code == 0 and '"mode": "hybrid"' in result.stdout and '"found_by"' in result.stdout
    result = runner.invoke(app, ["query", str(small_index), HOTEL, "--mode", "fuzzy"])
    assert result.exit_code != 0 and "fuzzy" in result.output


def test_tied_lexical_scores_come_in_passage_id_order(tmp_path: Path) -> None:
    from index_build.lexical_writer import write_lexical

    # 30 passages of one text all score alike; written in reverse id order on two threads, tantivy's own order
    # (document address) is not the passage ids', so only the tie rule makes the answer the lowest ids first.
    directory = tmp_path / LEXICAL_DIR
    text = "The Gunpowder Incident was a conflict early in the American Revolution."
    assert write_lexical(directory, ((pid, text) for pid in reversed(range(30))), threads=2) == 30
    index = LexicalIndex(directory)
    hits = index.search("gunpowder revolution", k=5)
    assert [pid for pid, _ in hits] == [0, 1, 2, 3, 4] and len({score for _, score in hits}) == 1
    assert [pid for pid, _ in index.search("gunpowder", k=30)] == list(range(30))
