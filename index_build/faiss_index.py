"""Build the FAISS index from embedding shards: choose a factory by corpus size, train, add with ids.

Size thresholds (vectors are unit length, the metric is inner product = cosine):

- up to 200,000 passages: `Flat`, exact search. At 384 dimensions that is 1.5 KB a passage and a
  brute-force scan still answers in milliseconds.
- above: `IVF{nlist},Flat` with nlist the power of two nearest 4 * sqrt(n) (the FAISS wiki's guideline),
  trained on 64 vectors per list. Its default `nprobe` is measured after the build (index_build.tuning).

When the installed faiss sees GPUs, training and adding of IVF indexes run there, and the index is
copied back to the CPU before it is written. IVF builds save the trained index and each block of added
vectors as they go, so that a killed build redoes at most one block (`build_faiss(parts_dir=...)`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retriever.bundle import atomic_path
from retriever.faiss_io import ivf_of

FLAT_MAX = 200_000
TRAIN_PER_LIST = 64
# Vectors per saved block when adding resumably: a kill loses at most one block. About 40 s of adding to
# IVF4096,SQ8 on 2 CPU cores (27,000 vectors/s measured), 1 GB of float32 input at 384 dimensions.
ADD_BLOCK_VECTORS = 1_000_000
TRAINED_NAME = "trained.faiss"


def choose_factory(n: int) -> str:
    if n <= FLAT_MAX:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    return f"IVF{nlist},Flat"


def build_faiss(
    shards: Sequence[Path],
    dimension: int,
    factory: str,
    use_gpu: bool | None = None,
    parts_dir: Path | None = None,
    add_block: int = ADD_BLOCK_VECTORS,
) -> Any:
    """Train (if the factory needs it) and fill an index whose ids are the passage ids.

    With `parts_dir`, an IVF index is built resumably: the trained, empty index is saved there, and the
    vectors are added in blocks of about `add_block` (whole shards), each saved as its own IVF file, then
    merged in order. A rerun after a kill reuses the trained index and every saved block, and the merged
    file is byte for byte the one adding everything at once makes (IVF lists keep insertion order; tested).
    Other kinds (Flat, HNSW, fast-scan IVF, whose merge reorders codes) are built in one go.
    """
    index = _empty_index(dimension, factory)
    gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
    if parts_dir is None or not _merges_exactly(index):
        working = faiss.index_cpu_to_all_gpus(index) if gpu and ivf_of(index) is not None else index
        if not working.is_trained:
            working.train(_training_sample(shards, index))
        for first, shard in zip(_offsets_of(shards), shards, strict=True):
            vectors = np.load(shard)
            working.add_with_ids(vectors, np.arange(first, first + len(vectors), dtype=np.int64))
        return faiss.index_gpu_to_cpu(working) if working is not index else index
    parts_dir.mkdir(parents=True, exist_ok=True)
    trained = _trained(index, shards, parts_dir / TRAINED_NAME, gpu)
    firsts = _offsets_of(shards)
    merged = faiss.clone_index(trained)
    for number, block in enumerate(add_blocks([len(np.load(s, mmap_mode="r")) for s in shards], add_block)):
        path = parts_dir / f"added-{number:06d}.faiss"
        rows = sum(len(np.load(shards[i], mmap_mode="r")) for i in block)
        part = faiss.read_index(str(path)) if path.exists() else None
        if part is None or part.ntotal != rows:
            part = _added(trained, [shards[i] for i in block], [firsts[i] for i in block], gpu)
            with atomic_path(path) as tmp:
                faiss.write_index(part, str(tmp))
        merged.merge_from(part, 0)
    return merged


def add_blocks(shard_rows: Sequence[int], add_block: int) -> list[list[int]]:
    """Consecutive shard numbers grouped into blocks of at least `add_block` rows (the last may be short).

    Depends only on the shard sizes, so a rerun groups the same shards and finds its saved blocks.
    """
    blocks: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for number, count in enumerate(shard_rows):
        current.append(number)
        rows += count
        if rows >= add_block:
            blocks.append(current)
            current, rows = [], 0
    if current:
        blocks.append(current)
    return blocks


def _empty_index(dimension: int, factory: str) -> Any:
    try:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"invalid FAISS factory string {factory!r}: {str(exc).splitlines()[0][:200]}") from exc
    if ivf_of(index) is None:
        # Flat, HNSW, PQ... store vectors in insertion order only; the ID map keeps our ids explicit.
        index = faiss.IndexIDMap2(index)
    return index


def _merges_exactly(index: Any) -> bool:
    """IVF indexes whose `merge_from` appends each list in order; fast-scan ones repack their codes."""
    ivf = ivf_of(index)
    return ivf is not None and not isinstance(ivf, faiss.IndexIVFFastScan)


def _trained(index: Any, shards: Sequence[Path], path: Path, gpu: bool) -> Any:
    """The trained, empty index: read from `path` when a killed build saved it, else trained and saved."""
    if path.exists():
        return faiss.read_index(str(path))
    working = faiss.index_cpu_to_all_gpus(index) if gpu else index
    working.train(_training_sample(shards, index))
    trained = faiss.index_gpu_to_cpu(working) if gpu else index
    with atomic_path(path) as tmp:
        faiss.write_index(trained, str(tmp))
    return trained


def _added(trained: Any, shards: Sequence[Path], firsts: Sequence[int], gpu: bool) -> Any:
    """A copy of the trained index holding one block's vectors with their passage ids."""
    part = faiss.clone_index(trained)
    working = faiss.index_cpu_to_all_gpus(part) if gpu else part
    for first, shard in zip(firsts, shards, strict=True):
        vectors = np.load(shard)
        working.add_with_ids(vectors, np.arange(first, first + len(vectors), dtype=np.int64))
    return faiss.index_gpu_to_cpu(working) if gpu else part


def _training_sample(shards: Sequence[Path], index: Any) -> np.ndarray:
    """An evenly spaced, deterministic sample: enough vectors per inverted list, never the whole corpus."""
    ivf = ivf_of(index)
    want = TRAIN_PER_LIST * ivf.nlist if ivf is not None else 100_000
    arrays = [np.load(s, mmap_mode="r") for s in shards]
    total = sum(len(a) for a in arrays)
    step = max(1, total // want)
    picked = [np.asarray(a[(-offset) % step :: step]) for a, offset in zip(arrays, _offsets(arrays), strict=True)]
    return np.ascontiguousarray(np.concatenate(picked), dtype=np.float32)


def _offsets_of(shards: Sequence[Path]) -> list[int]:
    return _offsets([np.load(s, mmap_mode="r") for s in shards])


def _offsets(arrays: Sequence[np.ndarray]) -> list[int]:
    offsets, first = [], 0
    for array in arrays:
        offsets.append(first)
        first += len(array)
    return offsets


def write_faiss(index: Any, path: Path) -> None:
    faiss.write_index(index, str(path))
