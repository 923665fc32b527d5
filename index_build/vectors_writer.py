"""Write a copy of every passage vector into the bundle: float16 for `build --rescore` (exact re-scoring), float32
for a later `build --reuse` (vectors.f32.npy, exact enough to stand for a new embedding)."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index_build.faults import stage_io
from retriever.bundle import atomic_path


def write_vectors(shards: Sequence[Path], path: Path, dimension: int, dtype: type[np.floating] = np.float16) -> int:
    """Concatenate the embedding shards, in passage-id order, into one .npy file of `dtype`; returns its rows.

    Shard by shard into a memory-mapped output, so memory stays at one shard whatever the corpus size;
    written under a temporary name and renamed, like every bundle file.
    """
    with stage_io("vectors", path), atomic_path(path) as tmp:
        total = sum(int(np.load(s, mmap_mode="r").shape[0]) for s in shards)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(total, dimension))
        reserve(tmp)
        first = 0
        for shard in shards:
            block = np.load(shard, mmap_mode="r")
            out[first : first + len(block)] = block
            first += len(block)
        out.flush()
        del out
    return total


def reserve(path: Path) -> None:
    """Allocate the file's blocks now: a memory map that meets a full disk later dies of SIGBUS, no message."""
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # else: cannot reserve, map as is
                raise
