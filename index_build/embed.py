"""Embed every passage into fixed-size shards on disk, so a killed build resumes where it stopped.

Shard i always holds passages [i * shard_size, (i + 1) * shard_size): the same texts go to the model in
the same groups whether or not the build was interrupted, so a resumed build equals an uninterrupted one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index_build.faults import stage_io
from retriever.bundle import atomic_open, embedding_text
from retriever.model import Encoder
from retriever.store import PassageStore


def shard_path(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"shard-{index:06d}.npy"


def shard_ranges(total: int, shard_size: int) -> Iterator[tuple[int, int, int]]:
    for number, first in enumerate(range(0, total, shard_size)):
        yield number, first, min(first + shard_size, total)


def shard_is_complete(path: Path, rows: int, dimension: int) -> bool:
    if not path.exists():
        return False
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return False
    return array.shape == (rows, dimension) and array.dtype == np.float32


def missing_shards(shard_dir: Path, ranges: list[tuple[int, int, int]], dimension: int) -> list[tuple[int, int, int]]:
    """The (number, first, last) ranges whose shard is absent or incomplete: the work a build has left."""
    return [r for r in ranges if not shard_is_complete(shard_path(shard_dir, r[0]), r[2] - r[1], dimension)]


def embed_passages(
    store: PassageStore,
    encoder: Encoder,
    shard_dir: Path,
    total: int,
    shard_size: int,
    batch_size: int,
    progress: bool = True,
) -> list[Path]:
    """Make sure every shard exists; return their paths in id order. Existing complete shards are kept."""
    with stage_io("embedding", shard_dir):
        shard_dir.mkdir(parents=True, exist_ok=True)
    ranges = list(shard_ranges(total, shard_size))
    todo = missing_shards(shard_dir, ranges, encoder.dimension)
    done = total - sum(last - first for _, first, last in todo)
    with tqdm(total=total, initial=done, unit="passage", desc="embedding", disable=not progress, smoothing=0.1) as bar:
        for number, first, last in todo:
            bar.update(embed_shard(store, encoder, shard_dir, number, first, last, batch_size))
    return [shard_path(shard_dir, number) for number, _, _ in ranges]


def embed_shard(
    store: PassageStore, encoder: Encoder, shard_dir: Path, number: int, first: int, last: int, batch_size: int
) -> int:
    """Write one shard, atomically; shared with index_build.distributed so a Ray worker makes the same file."""
    texts = [embedding_text(title, section, text) for _, title, section, text in store.iter_texts(first, last)]
    if len(texts) != last - first:
        raise RuntimeError(f"store returned {len(texts)} passages for ids [{first}, {last})")
    vectors = encoder.encode(texts, batch_size=batch_size)
    path = shard_path(shard_dir, number)
    # Serialised first and written by Python: np.save into a file writes with fwrite, whose short write on a
    # full disk says "N requested and M written" and loses the errno that tells the user why.
    data = io.BytesIO()
    np.save(data, vectors)
    with stage_io("embedding", path), atomic_open(path, "wb") as fh:
        fh.write(data.getbuffer())
    return last - first
