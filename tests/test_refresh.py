"""Refreshing an index from a newer dump (`build --reuse OLD`) equals a build from scratch, and embeds only
what changed; a bundle that cannot lend its vectors is refused in one line; `groundsearch diff` counts it all.

The dumps are real: the first articles of a real export, parsed and written back as XML, and a "next month" of
it made the same way with the edits a month brings (text changed in two articles, one deleted, one added, one
renamed). Builds use the real model without the ONNX export (which reuse does not touch), with small shards,
so that shards wholly reused, partly reused and not reused at all occur in one build.
"""

from __future__ import annotations

import bz2
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import index_rows, nothing_left
from typer.testing import CliRunner

from groundsearch.cli import app
from index_build import BuildOptions, ReuseRefused, RunOptions, build_index
from index_build.reuse import VectorSource
from retriever import Retriever
from retriever.bundle import MANIFEST_NAME, STORE_NAME, VECTOR_KEYS_NAME, VECTORS_F32_NAME, embedding_text
from retriever.model import Encoder

SHARD = 16
ARTICLES = 10  # of the real export's first articles, in the old dump; the 11th is the one the new dump adds
OPTIONS = BuildOptions(shard_size=SHARD, onnx=False)
QUIET = RunOptions(progress=False, workers=1)
FLAGS = ["--shard-size", str(SHARD), "--no-onnx", "--workers", "1", "--quiet"]
QUESTIONS = [
    "gunpowder removed from the magazine in Williamsburg",
    "complex manifold with many meromorphic functions",
    "block copolymer used in adhesives",
    "Haitian politician and police chief",
    "a boy with a watch that stops time",
    "radio comedy series",
    "child sponsorship charity",
    "Fairbanks mayor",
]
ADDED_SENTENCE = " In a later survey the figure was revised once more."


@dataclass(frozen=True)
class Dumps:
    old: Path
    new: Path
    renamed: tuple[str, str]
    deleted: str
    added: str
    edited: tuple[str, ...]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory, corpus_xml: Path) -> Dumps:
    """Two versions of a real dump: the first ARTICLES articles, and a month later."""
    folder = tmp_path_factory.mktemp("dumps")
    root = ET.fromstring(bz2.decompress(corpus_xml.read_bytes()))
    ns = root.tag[1:].partition("}")[0]
    ET.register_namespace("", ns)

    def q(tag: str) -> str:
        return f"{{{ns}}}{tag}"

    pages = [p for p in root.findall(q("page")) if p.findtext(q("ns")) == "0" and p.find(q("redirect")) is None]
    for page in root.findall(q("page")):
        root.remove(page)
    for page in pages[:ARTICLES]:
        root.append(page)
    old = folder / "old.xml"
    ET.ElementTree(root).write(old, encoding="utf-8", xml_declaration=True)

    def text_of(page: ET.Element) -> ET.Element:
        element = page.find(f"{q('revision')}/{q('text')}")
        assert element is not None and element.text
        return element

    titles = [page.findtext(q("title")) or "" for page in pages]
    # Edits: a sentence added in the middle of one article, a word changed in another's later section.
    edited = (titles[1], titles[5])
    gunpowder = text_of(pages[1])
    assert gunpowder.text is not None
    middle = gunpowder.text.index(". ", len(gunpowder.text) // 2) + 1
    gunpowder.text = gunpowder.text[:middle] + ADDED_SENTENCE + gunpowder.text[middle:]
    kraton = text_of(pages[5])
    assert kraton.text is not None
    at = kraton.text.index(" the ", len(kraton.text) // 2)
    kraton.text = kraton.text[:at] + " this " + kraton.text[at + 5 :]
    renamed = (titles[3], titles[3] + " (politician)")
    title = pages[3].find(q("title"))
    assert title is not None
    title.text = renamed[1]
    root.remove(pages[7])  # deleted
    root.append(pages[ARTICLES])  # added
    new = folder / "new.xml"
    ET.ElementTree(root).write(new, encoding="utf-8", xml_declaration=True)
    return Dumps(old, new, renamed, titles[7], titles[ARTICLES], edited)


@pytest.fixture(scope="module")
def old_bundle(tmp_path_factory: pytest.TempPathFactory, dumps: Dumps) -> Path:
    out = tmp_path_factory.mktemp("old") / "old.idx"
    build_index([dumps.old], out, OPTIONS, QUIET)
    return out


@dataclass(frozen=True)
class Refresh:
    out: Path
    stdout: str
    encoded: list[int]  # the size of each list of texts the model was given


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory, dumps: Dumps, old_bundle: Path) -> Refresh:
    """The new dump built with --reuse of the old bundle, through the CLI, the model's encode spied on."""
    out = tmp_path_factory.mktemp("refresh") / "new.idx"
    calls: list[int] = []
    encode = Encoder.encode

    def spy(self: Encoder, texts: list[str], *args: object, **kwargs: object) -> np.ndarray:
        calls.append(len(texts))
        return encode(self, texts, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Encoder, "encode", spy)
        args = ["build", str(dumps.new), "--out", str(out), "--reuse", str(old_bundle), *FLAGS]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return Refresh(out, result.stdout, calls)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory, dumps: Dumps) -> Path:
    out = tmp_path_factory.mktemp("scratch") / "new.idx"
    build_index([dumps.new], out, OPTIONS, QUIET)
    return out


def _embedding_texts(bundle: Path) -> list[str]:
    with sqlite3.connect(bundle / STORE_NAME) as db:
        rows = db.execute(
            "SELECT d.title, p.section, p.text FROM passages p JOIN documents d ON d.id = p.document_id ORDER BY p.id"
        ).fetchall()
    return [embedding_text(*row) for row in rows]


def test_refresh_equals_a_scratch_build_and_embeds_only_what_changed(
    dumps: Dumps, old_bundle: Path, refreshed: Refresh, scratch: Path
) -> None:
    # What must be embedded, counted from the two stores' texts alone: passages whose embedded text is new.
    before = set(_embedding_texts(old_bundle))
    texts = _embedding_texts(scratch)
    expected = sum(1 for text in texts if text not in before)
    renamed = sum(1 for text in texts if text.startswith(dumps.renamed[1] + "\n"))
    added = sum(1 for text in texts if text.startswith(dumps.added + "\n"))
    assert renamed and added and expected >= renamed + added + len(dumps.edited), expected
    assert expected < len(texts) // 2  # and most of the corpus was reused

    assert sum(refreshed.encoded) == expected, refreshed.encoded  # what the model was really given
    vectors = Retriever.open(refreshed.out).manifest.extra["vectors"]
    assert vectors == {"reused": len(texts) - expected, "encoded": expected, "reused_from": [str(old_bundle)]}
    share = 100 * (len(texts) - expected) / len(texts)
    assert f"; vectors reused {len(texts) - expected} ({share:.1f}%), encoded {expected}" in refreshed.stdout

    # Byte for byte: the store, and the keys; the vectors to float rounding.
    assert index_rows(refreshed.out / STORE_NAME) == index_rows(scratch / STORE_NAME)
    assert (refreshed.out / VECTOR_KEYS_NAME).read_bytes() == (scratch / VECTOR_KEYS_NAME).read_bytes()
    got, want = (np.load(bundle / VECTORS_F32_NAME) for bundle in (refreshed.out, scratch))
    assert got.shape == want.shape == (len(texts), 384)
    largest = float(np.abs(got - want).max())
    print(f"largest |refreshed - scratch| over {got.size:,} vector components: {largest:.3g}")
    assert largest < 1e-5

    fresh, reference = Retriever.open(refreshed.out), Retriever.open(scratch)
    for mode in ("lexical", "dense", "hybrid"):
        answers = [r.search_batch(QUESTIONS, k=10, mode=mode) for r in (fresh, reference)]
        for a, b in zip(*answers, strict=True):
            assert [(h.passage_id, h.text) for h in a] == [(h.passage_id, h.text) for h in b], mode
            if mode == "lexical":
                assert [h.score for h in a] == [h.score for h in b]


def test_diff_counts_articles_and_passages(dumps: Dumps, old_bundle: Path, refreshed: Refresh) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["diff", str(old_bundle), str(refreshed.out), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    articles, passages = found["articles"], found["passages"]
    assert articles["added"] == {"count": 1, "titles": [dumps.added]}
    assert articles["removed"] == {"count": 1, "titles": [dumps.deleted]}
    changed = articles["changed"]["titles"]
    assert f"{dumps.renamed[0]} → {dumps.renamed[1]}" in changed and set(dumps.edited) <= set(changed)
    assert articles["changed"]["count"] == len(changed) == 3
    assert (articles["old"], articles["new"], articles["unchanged"]) == (ARTICLES, ARTICLES, ARTICLES - 4)

    # Passages by text hash, counted here from the stores as multisets.
    def hashes(bundle: Path) -> Counter[str]:
        with sqlite3.connect(bundle / STORE_NAME) as db:
            return Counter(sha for (sha,) in db.execute("SELECT sha256 FROM passages"))

    old, new = hashes(old_bundle), hashes(refreshed.out)
    same = sum((old & new).values())
    assert passages == {
        "old": old.total(),
        "new": new.total(),
        "added": new.total() - same,
        "removed": old.total() - same,
        "unchanged": same,
    }

    text = runner.invoke(app, ["diff", str(old_bundle), str(refreshed.out), "--limit", "1"])
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0] == f"articles: 1 added, 1 removed, 3 changed, {ARTICLES - 4} unchanged ({ARTICLES} → {ARTICLES})"
    assert lines[1].startswith(f"passages: {new.total() - same} added, {old.total() - same} removed, {same} unchanged")
    assert "  ... and 2 more" in lines and f"  {dumps.added}" in lines

    missing = runner.invoke(app, ["diff", str(old_bundle), str(old_bundle.parent / "nope.idx")])
    assert missing.exit_code == 1 and len(missing.stderr.strip().splitlines()) == 1


def _refused(tmp_path: Path, corpus: Path, reuse: Path) -> str:
    out = tmp_path / "x.idx"
    result = CliRunner().invoke(app, ["build", str(corpus), "--out", str(out), "--reuse", str(reuse), *FLAGS])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --reuse {reuse}: "), result.stderr
    assert nothing_left(out)
    return lines[0]


def test_reuse_of_a_path_that_is_not_a_bundle(tmp_path: Path, partial_xml: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("not an index", encoding="utf-8")
    assert "not an index bundle" in _refused(tmp_path, partial_xml, folder)
    assert "no such index bundle" in _refused(tmp_path, partial_xml, tmp_path / "absent.idx")


def test_reuse_of_a_bundle_from_another_model(tmp_path: Path, partial_xml: Path, tiny_model: Path) -> None:
    other = tmp_path / "tiny.idx"
    build_index([partial_xml], other, BuildOptions(model=str(tiny_model), onnx=False), QUIET)
    assert "its vectors come from another model" in _refused(tmp_path, partial_xml, other)


def test_reuse_of_a_damaged_vectors_file(tmp_path: Path, dumps: Dumps, old_bundle: Path) -> None:
    damaged = tmp_path / "damaged.idx"
    shutil.copytree(old_bundle, damaged)
    vectors = damaged / VECTORS_F32_NAME
    vectors.write_bytes(vectors.read_bytes()[:-1000])  # truncated
    assert f"{VECTORS_F32_NAME} is" in _refused(tmp_path, dumps.new, damaged)

    # The size the manifest records, but another dtype and shape: refused by what the file holds.
    rows = np.load(old_bundle / VECTORS_F32_NAME)
    np.save(vectors, rows.astype(np.float64)[:, : rows.shape[1] // 2])
    manifest = json.loads((damaged / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["files"]["vectors_f32"]["size"] = vectors.stat().st_size
    (damaged / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    line = _refused(tmp_path, dumps.new, damaged)
    assert f"{VECTORS_F32_NAME} is damaged: it holds float64 of shape" in line and "leave it out of --reuse" in line


def test_a_bundle_of_another_text_template_or_max_length_is_refused(tmp_path: Path, old_bundle: Path) -> None:
    from index_build.reuse import BuildModel, refusal
    from index_build.vector_keys import KeyModel
    from retriever.bundle import read_manifest

    manifest = read_manifest(old_bundle)
    assert manifest.reusable_vectors is not None
    model = manifest.model
    ours = BuildModel(model.name, KeyModel(model.weights_sha256, manifest.reusable_vectors.max_length), 384)
    assert refusal(manifest, ours) is None
    shorter = BuildModel(model.name, KeyModel(model.weights_sha256, 128), 384)
    assert "read at most 256 tokens of a passage, this build's reads 128" in (refusal(manifest, shorter) or "")
    data = json.loads((old_bundle / MANIFEST_NAME).read_text(encoding="utf-8"))
    data["text_template"] = data["reusable_vectors"]["text_template"] = "{title}: {text}"
    other = tmp_path / "template.idx"
    shutil.copytree(old_bundle, other)
    (other / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReuseRefused, match=r"embedded as '\{title\}: \{text\}', this build embeds"):
        VectorSource.open(other, ours)


def test_a_row_whose_stored_key_differs_is_never_taken(
    tmp_path: Path, dumps: Dumps, old_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup gone wrong (here: every row shifted by one) raises instead of giving a passage another's vector."""
    find = VectorSource.find
    monkeypatch.setattr(VectorSource, "find", lambda self, keys: np.where((r := find(self, keys)) > 0, r - 1, r))
    run = RunOptions(progress=False, workers=1, reuse=(old_bundle,))
    with pytest.raises(ReuseRefused, match="the key stored at row .* is not the key that row was taken for"):
        build_index([dumps.new], tmp_path / "x.idx", OPTIONS, run)


# A --reuse build SIGKILLed as it is about to embed its Nth shard (argv: N, corpus, out, old bundle).
KILLED_REFRESH = textwrap.dedent(
    """
    import os, signal, sys
    import index_build.embed as embed
    from index_build import BuildOptions, RunOptions, build_index

    n, corpus, out, old = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    calls, original = [0], embed.embed_shard

    def killing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    embed.embed_shard = killing
    build_index(
        [corpus], out, BuildOptions(shard_size={shard}, onnx=False),
        RunOptions(progress=False, workers=1, reuse=[old]),
    )
    """
).format(shard=SHARD)


def test_a_killed_refresh_resumes_to_the_same_bundle(
    tmp_path: Path, dumps: Dumps, old_bundle: Path, refreshed: Refresh
) -> None:
    out = tmp_path / "resumed.idx"
    killed = subprocess.run([sys.executable, "-c", KILLED_REFRESH, "2", str(dumps.new), str(out), str(old_bundle)])
    assert killed.returncode == -9
    staging = out.with_name(out.name + ".partial")
    state = json.loads((staging / "build-state.json").read_text(encoding="utf-8"))
    assert state["vectors_reused"] and state["reused_from"] == [str(old_bundle)]  # recorded before the kill
    assert list((staging / "shards").glob("reuse-*.npz")), "the kill was to leave seeds of shards not embedded yet"

    # The rerun, without --reuse: the seeds the first run wrote still spare their rows the model.
    result = CliRunner().invoke(app, ["build", str(dumps.new), "--out", str(out), *FLAGS])
    assert result.exit_code == 0, result.output
    assert "(resumed: read, lexical kept)" in result.stdout
    assert index_rows(out / STORE_NAME) == index_rows(refreshed.out / STORE_NAME)
    got, want = (np.load(bundle / VECTORS_F32_NAME) for bundle in (out, refreshed.out))
    assert np.array_equal(got, want)
    manifests = [Retriever.open(bundle).manifest.extra["vectors"] for bundle in (out, refreshed.out)]
    assert manifests[0] == manifests[1]


def test_several_bundles_are_looked_up_in_order(old_bundle: Path, refreshed: Refresh, scratch: Path) -> None:
    """`--reuse A --reuse B`: a key is taken from the first bundle that holds it, the others fill the gaps."""
    from index_build.reuse import BuildModel, plan_shards
    from index_build.vector_keys import KeyModel
    from retriever.bundle import read_manifest

    record = read_manifest(old_bundle).reusable_vectors
    assert record is not None
    model = BuildModel("m", KeyModel(record.weights_sha256, record.max_length), record.dimension)
    keys = np.load(scratch / VECTOR_KEYS_NAME)
    todo = [(0, 0, len(keys))]
    alone = plan_shards([VectorSource.open(old_bundle, model)], keys, todo)[0]
    both = plan_shards([VectorSource.open(b, model) for b in (old_bundle, refreshed.out)], keys, todo)[0]
    assert 0 < alone.reused < len(keys) and both.reused == len(keys)
    assert np.array_equal(both.source[alone.source == 0], np.zeros(alone.reused))  # the first bundle wins
    assert np.array_equal(both.rows[alone.source == 0], alone.rows[alone.source == 0])
    assert set(both.source[alone.source < 0]) == {1}
