"""Seeded synthetic vectors shaped like real MiniLM embeddings, and text recombined from real sentences.

Used by bench/scale.py and bench/codecs.py to measure FAISS at sizes that would take days to embed on a CPU.

Vectors: a Gaussian mixture (like faiss's `SyntheticDataset`, which draws from a random low-rank model) whose
shape comes from real embeddings: the mean and covariance of real MiniLM passage vectors (SQuAD contexts,
embedded by the project's encoder) give an eigen-basis L; a centre is mean + sqrt(spread) * z @ L.T, a vector
is its centre + sqrt(1 - spread) * z' @ L.T, normalised. So the data has the real data's mean direction and
decaying variance spectrum (what makes PQ and IVF work or fail) and cluster structure, not isotropic noise.
Queries are fresh draws from the same mixture (another seed), never corpus members.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def squad_file() -> Path:
    shared = Path(os.environ.get("GROUNDSEARCH_SHARED_DATA") or ROOT / "tests" / "data")
    files = sorted((shared / "squad").glob("*.json"))
    if not files:
        raise SystemExit(f"no SQuAD JSON under {shared / 'squad'} (set GROUNDSEARCH_SHARED_DATA)")
    return files[0]


def squad_articles() -> list[tuple[str, list[str]]]:
    """(title, contexts) of each SQuAD article."""
    data = json.loads(squad_file().read_text(encoding="utf-8"))["data"]
    return [(a["title"].replace("_", " "), [p["context"] for p in a["paragraphs"]]) for a in data]


def squad_questions() -> list[str]:
    data = json.loads(squad_file().read_text(encoding="utf-8"))["data"]
    return [qa["question"] for a in data for p in a["paragraphs"] for qa in p["qas"]]


def real_vectors(cache: Path | None = None) -> np.ndarray:
    """MiniLM vectors of every SQuAD context (1,023 paragraphs in part a), embedded once and cached as .npy."""
    if cache is not None and cache.exists():
        return np.load(cache)
    from retriever.model import DEFAULT_MODEL, Encoder

    texts = [c for _, contexts in squad_articles() for c in contexts]
    vectors = np.asarray(Encoder(DEFAULT_MODEL, device="cpu").encode(texts, batch_size=64), dtype=np.float32)
    if cache is not None:
        np.save(cache, vectors)
    return vectors


class Mixture:
    """Clustered unit vectors with the mean and variance spectrum of `real` (see the module docstring)."""

    def __init__(self, real: np.ndarray, centres: int = 4096, spread: float = 0.5, seed: int = 0) -> None:
        self.mean = real.mean(axis=0).astype(np.float32)
        cov = np.cov((real - self.mean).T)
        values, vectors = np.linalg.eigh(cov)
        basis = (vectors * np.sqrt(np.clip(values, 0, None))).T.astype(np.float32)  # z @ basis ~ N(0, cov)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((centres, real.shape[1]), dtype=np.float32)
        self.centres = self.mean + np.sqrt(spread) * (z @ basis)
        self.noise = (np.sqrt(1.0 - spread) * basis).astype(np.float32)
        self.dimension = real.shape[1]

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        which = rng.integers(0, len(self.centres), n)
        x = self.centres[which] + rng.standard_normal((n, self.dimension), dtype=np.float32) @ self.noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    def shards(self, n: int, shard_size: int, seed: int = 1) -> Iterator[np.ndarray]:
        """n vectors in shards of `shard_size`; shard i is seeded (seed, i), so any shard can be made alone."""
        for i, first in enumerate(range(0, n, shard_size)):
            yield self.sample(min(shard_size, n - first), seed * 1_000_003 + i)


def sentences() -> list[tuple[str, str]]:
    """(title, sentence) of every sentence of every SQuAD context."""
    out = []
    for title, contexts in squad_articles():
        for context in contexts:
            out += [(title, s) for s in re.split(r"(?<=[.!?])\s+", context) if len(s.split()) >= 4]
    return out
