"""Write the float16 copy of every passage vector that `build --rescore` keeps for exact re-scoring."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retriever.bundle import atomic_path


def write_vectors(shards: Sequence[Path], path: Path, dimension: int) -> int:
    """Concatenate the embedding shards, in passage-id order, into one float16 .npy file; returns its rows.

    Shard by shard into a memory-mapped output, so memory stays at one shard whatever the corpus size;
    written under a temporary name and renamed, like every bundle file.
    """
    total = sum(int(np.load(s, mmap_mode="r").shape[0]) for s in shards)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, dimension))
        first = 0
        for shard in shards:
            block = np.load(shard, mmap_mode="r")
            out[first : first + len(block)] = block
            first += len(block)
        out.flush()
        del out
    return total
