"""Build the FAISS index from embedding shards: choose a factory by corpus size, train, add with ids.

Size thresholds (vectors are unit length, the metric is inner product = cosine):

- up to 200,000 passages: `Flat`, exact search. At 384 dimensions that is 1.5 KB a passage and a
  brute-force scan still answers in milliseconds.
- above: `IVF{nlist},Flat` with nlist the power of two nearest 4 * sqrt(n) (the FAISS wiki's guideline),
  trained on 64 vectors per list. Its default `nprobe` is measured after the build (index_build.tuning).

When the installed faiss sees GPUs (the `gpu` extra), training and adding of IVF indexes run there, and
the index is copied back to the CPU before it is written. IVF builds save the trained index and each block of added
vectors as they go, so that a killed build redoes at most one block (`build_faiss(parts_dir=...)`).
"""

from __future__ import annotations

import math
import queue
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_build.faiss_gpu import index_to_gpus
from index_build.faults import BuildError, stage_io
from retriever.bundle import atomic_path
from retriever.faiss_io import ivf_of

FLAT_MAX = 200_000
TRAIN_PER_LIST = 64
# Vectors per saved block when adding resumably: a kill loses at most one block. About 13 s of adding to
# IVF4096,SQ8 on 2 CPU cores (bench/resume_stages.py), 1.5 GB of float32 input at 384 dimensions.
ADD_BLOCK_VECTORS = 1_000_000
TRAINED_NAME = "trained.faiss"
BLOCK_PREFIX = "added-"


def choose_factory(n: int) -> str:
    if n <= FLAT_MAX:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    return f"IVF{nlist},Flat"


def build_faiss(
    shards: Sequence[Path],
    dimension: int,
    factory: str,
    gpus: Sequence[int] | None = None,
    parts_dir: Path | None = None,
    add_block: int = ADD_BLOCK_VECTORS,
) -> Any:
    """Train (if the factory needs it) and fill an index whose ids are the passage ids: `train_faiss`, then
    `add_faiss`, as the build's train and add stages do."""
    trained = train_faiss(shards, dimension, factory, gpus, parts_dir)
    return add_faiss(trained, shards, gpus, parts_dir, add_block)


def train_faiss(
    shards: Sequence[Path],
    dimension: int,
    factory: str,
    gpus: Sequence[int] | None = None,
    parts_dir: Path | None = None,
) -> Any:
    """The trained, empty index of `factory` (the same index untrained where it needs no training).

    `gpus`: the FAISS GPU ids to train and add IVF indexes on; None means every GPU the installed faiss
    sees (none with faiss-cpu), [] the CPU. Training runs on the first (k-means on several would only be
    repeated). With `parts_dir`, an IVF index that merges exactly is saved there once trained, and read back
    from there by a rerun (see `add_faiss`); other kinds (Flat, HNSW, fast-scan IVF) are trained in memory.
    """
    index = _empty_index(dimension, factory)
    devices = _devices(index, gpus)
    if parts_dir is None or not _merges_exactly(index):
        return index if index.is_trained else _train(index, shards, devices)
    parts_dir.mkdir(parents=True, exist_ok=True)
    trained_path = parts_dir / TRAINED_NAME
    if trained_path.exists():
        return faiss.read_index(str(trained_path))
    trained = _train(index, shards, devices)
    with atomic_path(trained_path) as tmp:
        write_faiss(trained, tmp, trained_path)
    return trained


def add_faiss(
    trained: Any,
    shards: Sequence[Path],
    gpus: Sequence[int] | None = None,
    parts_dir: Path | None = None,
    add_block: int = ADD_BLOCK_VECTORS,
) -> Any:
    """`trained` filled with the shards' vectors, ids = passage ids.

    Blocks are added one per GPU at a time, in parallel, each GPU's scratch memory sized from its free memory
    (index_build.faiss_gpu). With `parts_dir`, an IVF index is filled resumably: the vectors are added in
    blocks of about `add_block` (whole shards), each saved as its own IVF file, then merged in order. A rerun
    after a kill reuses every saved block, and the merged file is byte for byte the one adding everything at
    once makes (IVF lists keep insertion order; tested). Other kinds are filled in one go, on the CPU.
    """
    devices = _devices(trained, gpus)
    rows = [len(_load_shard(s, mmap=True)) for s in shards]
    firsts = _offsets(rows)
    if parts_dir is None or not _merges_exactly(trained):
        return _add(trained, shards, firsts, devices[0] if devices else None, in_place=True)
    parts_dir.mkdir(parents=True, exist_ok=True)
    blocks = add_blocks(rows, add_block)
    paths = [_block_path(parts_dir, number) for number in range(len(blocks))]

    def make(number: int, device: int | None) -> None:
        block = blocks[number]
        part = _add(trained, [shards[i] for i in block], [firsts[i] for i in block], device, in_place=False)
        with atomic_path(paths[number]) as tmp:
            write_faiss(part, tmp, paths[number])

    todo = [n for n, path in enumerate(paths) if not _holds(path, sum(rows[i] for i in blocks[n]))]
    if len(devices) > 1:
        free: queue.Queue[int] = queue.Queue()
        for device in devices:
            free.put(device)

        def on_a_free_gpu(number: int) -> None:
            device = free.get()
            try:
                make(number, device)
            finally:
                free.put(device)

        with ThreadPoolExecutor(len(devices)) as pool:  # faiss releases the GIL while it adds
            list(pool.map(on_a_free_gpu, todo))
    else:
        for number in todo:
            make(number, devices[0] if devices else None)
    merged = faiss.clone_index(trained)
    for path in paths:
        merged.merge_from(faiss.read_index(str(path)), 0)
    return merged


def _devices(index: Any, gpus: Sequence[int] | None) -> list[int]:
    """The GPUs to train and add on: only IVF kinds that merge exactly are built on GPUs."""
    if not _merges_exactly(index):
        return []
    return list(range(faiss.get_num_gpus())) if gpus is None else list(gpus)


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


def _block_path(parts_dir: Path, number: int) -> Path:
    return parts_dir / f"{BLOCK_PREFIX}{number:06d}.faiss"


def saved_blocks(parts_dir: Path) -> int:
    """How many added blocks a killed resumable build left in `parts_dir` (a rerun reuses the whole ones)."""
    return len(list(parts_dir.glob(f"{BLOCK_PREFIX}*.faiss")))


def _empty_index(dimension: int, factory: str) -> Any:
    try:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise BuildError(f"invalid FAISS factory string {factory!r}: {str(exc).splitlines()[0][:200]}") from None
    if ivf_of(index) is None:
        # Flat, HNSW, PQ... store vectors in insertion order only; the ID map keeps our ids explicit.
        index = faiss.IndexIDMap2(index)
    return index


def _merges_exactly(index: Any) -> bool:
    """IVF indexes whose `merge_from` appends each list in order; fast-scan ones repack their codes."""
    ivf = ivf_of(index)
    return ivf is not None and not isinstance(ivf, faiss.IndexIVFFastScan)


def _holds(path: Path, rows: int) -> bool:
    """Whether a saved block is there and whole (written under a temporary name, so it is, if present)."""
    if not path.exists():
        return False
    try:
        return int(faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY).ntotal) == rows
    except RuntimeError:
        return False


def _train(index: Any, shards: Sequence[Path], devices: Sequence[int]) -> Any:
    """The trained, empty index, trained on the first GPU of `devices` or on the CPU."""
    sample = _training_sample(shards, index)
    if not devices:
        index.train(sample)
        return index
    working = index_to_gpus(index, devices[:1], shard=False, batch_bytes=sample.nbytes)
    working.train(sample)
    return faiss.index_gpu_to_cpu(working)


def _add(trained: Any, shards: Sequence[Path], firsts: Sequence[int], device: int | None, in_place: bool) -> Any:
    """`trained` (or a copy of it) holding the shards' vectors with their passage ids, added on `device`."""
    part = trained if in_place else faiss.clone_index(trained)
    if device is None:
        working = part
    else:
        arrays = [_load_shard(s, mmap=True) for s in shards]
        rows, largest = sum(len(a) for a in arrays), max((a.nbytes for a in arrays), default=0)
        working = index_to_gpus(part, [device], shard=False, vectors=part.ntotal + rows, batch_bytes=largest)
    for first, shard in zip(firsts, shards, strict=True):
        vectors = _load_shard(shard)
        working.add_with_ids(vectors, np.arange(first, first + len(vectors), dtype=np.int64))
    return part if device is None else faiss.index_gpu_to_cpu(working)


def _training_sample(shards: Sequence[Path], index: Any) -> np.ndarray:
    """An evenly spaced, deterministic sample: enough vectors per inverted list, never the whole corpus."""
    ivf = ivf_of(index)
    want = TRAIN_PER_LIST * ivf.nlist if ivf is not None else 100_000
    arrays = [_load_shard(s, mmap=True) for s in shards]
    total = sum(len(a) for a in arrays)
    step = max(1, total // want)
    picked = [
        np.asarray(a[(-offset) % step :: step])
        for a, offset in zip(arrays, _offsets([len(a) for a in arrays]), strict=True)
    ]
    return np.ascontiguousarray(np.concatenate(picked), dtype=np.float32)


def _offsets(lengths: Sequence[int]) -> list[int]:
    """The first id of each of consecutive runs of `lengths` ids starting at 0."""
    offsets, first = [], 0
    for length in lengths:
        offsets.append(first)
        first += length
    return offsets


def _load_shard(path: Path, mmap: bool = False) -> np.ndarray:
    """An embedding shard; one that vanished since it was written is a `BuildIOError` (a rerun redoes it)."""
    with stage_io("FAISS", path, "read"):
        return np.load(path, mmap_mode="r" if mmap else None)


def write_faiss(index: Any, path: Path, final: Path | None = None) -> None:
    """Write `index` to `path` (a temporary name for `final`, which errors name), faults as `BuildIOError`.

    Through Python's own file object: faiss' writer reports a full disk as a RuntimeError quoting strerror,
    Python's as an OSError with the errno, which `stage_io` turns into the one-line message.
    """
    with stage_io("FAISS", final or path), open(path, "wb") as fh:
        faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write))  # type: ignore[attr-defined]
