"""Build the FAISS index from embedding shards: choose a factory by corpus size, train, add with ids.

Size thresholds (vectors are unit length, the metric is inner product = cosine):

- up to 200,000 passages: `Flat`, exact search. At 384 dimensions that is 1.5 KB a passage and a
  brute-force scan still answers in milliseconds.
- above: `IVF{nlist},Flat` with nlist the power of two nearest 4 * sqrt(n) (the FAISS wiki's guideline),
  trained on 64 vectors per list. Its default `nprobe` is measured after the build (index_build.tuning).

When the installed faiss sees GPUs, training and adding of IVF indexes run there, and the index is
copied back to the CPU before it is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retriever.faiss_io import ivf_of

FLAT_MAX = 200_000
TRAIN_PER_LIST = 64


def choose_factory(n: int) -> str:
    if n <= FLAT_MAX:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    return f"IVF{nlist},Flat"


def build_faiss(shards: Sequence[Path], dimension: int, factory: str, use_gpu: bool | None = None) -> Any:
    """Train (if the factory needs it) and fill an index whose ids are the passage ids."""
    try:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"invalid FAISS factory string {factory!r}: {str(exc).splitlines()[0][:200]}") from exc
    if ivf_of(index) is None:
        # Flat, HNSW, PQ... store vectors in insertion order only; the ID map keeps our ids explicit.
        index = faiss.IndexIDMap2(index)
    gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
    working = faiss.index_cpu_to_all_gpus(index) if gpu and ivf_of(index) is not None else index
    if not working.is_trained:
        working.train(_training_sample(shards, index))
    first = 0
    for shard in shards:
        vectors = np.load(shard)
        working.add_with_ids(vectors, np.arange(first, first + len(vectors), dtype=np.int64))
        first += len(vectors)
    return faiss.index_gpu_to_cpu(working) if working is not index else index


def _training_sample(shards: Sequence[Path], index: Any) -> np.ndarray:
    """An evenly spaced, deterministic sample: enough vectors per inverted list, never the whole corpus."""
    ivf = ivf_of(index)
    want = TRAIN_PER_LIST * ivf.nlist if ivf is not None else 100_000
    arrays = [np.load(s, mmap_mode="r") for s in shards]
    total = sum(len(a) for a in arrays)
    step = max(1, total // want)
    picked = [np.asarray(a[(-offset) % step :: step]) for a, offset in zip(arrays, _offsets(arrays), strict=True)]
    return np.ascontiguousarray(np.concatenate(picked), dtype=np.float32)


def _offsets(arrays: Sequence[np.ndarray]) -> list[int]:
    offsets, first = [], 0
    for array in arrays:
        offsets.append(first)
        first += len(array)
    return offsets


def write_faiss(index: Any, path: Path) -> None:
    faiss.write_index(index, str(path))
