"""Embed every passage into fixed-size shards on disk, so a killed build resumes where it stopped.

One interface, three back-ends: `embed_shards` finds the shards still missing and hands them, as
`(shard, first, last)` tasks, to a `Backend`: `InProcess` here, `DevicePool` (index_build.embed_pool) on
several devices, `RayCluster` (index_build.distributed) on a cluster. Every back-end writes a task with
`embed_shard`, so the files are the same whoever wrote them.

Shard i always holds passages [i * shard_size, (i + 1) * shard_size): the same texts go to the model in
the same groups whether or not the build was interrupted, so a resumed build equals an uninterrupted one.

With `build --reuse` (index_build.reuse) a shard may come with a seed, `reuse-NNNNNN.npz`: the vectors an older
bundle already had for some of its rows and the rows still to embed. `embed_shard` then embeds only those, so
every back-end encodes just the passages no old bundle had, and a shard whose every row was found never becomes
a task at all.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from index_build.faults import BuildIOError, stage_io
from retriever.bundle import atomic_open, embedding_text
from retriever.errors import GroundsearchError
from retriever.model import Encoder, ModelIdentity, default_batch_size
from retriever.store import PassageStore


def shard_path(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"shard-{index:06d}.npy"


def seed_path(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"reuse-{index:06d}.npz"


@dataclass(frozen=True)
class Seed:
    """A shard's rows taken from an older bundle: `vectors` holds every row (those in `missing` are zero until
    embedded), `missing` the rows (0-based in the shard) the model must embed."""

    vectors: np.ndarray
    missing: np.ndarray

    @property
    def reused(self) -> int:
        return len(self.vectors) - len(self.missing)


def write_seed(shard_dir: Path, number: int, seed: Seed) -> None:
    data = io.BytesIO()
    np.savez(data, vectors=seed.vectors, missing=seed.missing)
    path = seed_path(shard_dir, number)
    with stage_io("embedding", path), atomic_open(path, "wb") as fh:
        fh.write(data.getbuffer())


def read_seed(shard_dir: Path, number: int, rows: int, dimension: int) -> Seed | None:
    """The seed of shard `number`, or None where there is none (or one that is not this shard's: it is then
    embedded whole, which is slower, never wrong)."""
    path = seed_path(shard_dir, number)
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            seed = Seed(np.array(data["vectors"]), np.array(data["missing"]))
    except (ValueError, OSError, KeyError):
        return None
    vectors, missing = seed.vectors, seed.missing
    if vectors.shape != (rows, dimension) or vectors.dtype != np.float32 or missing.ndim != 1:
        return None
    if len(missing) and (missing.dtype.kind not in "iu" or missing.min() < 0 or missing.max() >= rows):
        return None
    return seed


def write_shard(shard_dir: Path, number: int, vectors: np.ndarray) -> None:
    """Write one shard's vectors, atomically: a shard file that exists is complete."""
    path = shard_path(shard_dir, number)
    # Serialised first and written by Python: np.save into a file writes with fwrite, whose short write on a
    # full disk says "N requested and M written" and loses the errno that tells the user why.
    data = io.BytesIO()
    np.save(data, vectors)
    with stage_io("embedding", path), atomic_open(path, "wb") as fh:
        fh.write(data.getbuffer())


def shard_ranges(total: int, shard_size: int) -> Iterator[tuple[int, int, int]]:
    for number, first in enumerate(range(0, total, shard_size)):
        yield number, first, min(first + shard_size, total)


def npy_complete(path: Path, shape: tuple[int, int], dtype: type[np.generic]) -> bool:
    """Whether `path` is a readable .npy file of `dtype` and `shape`: a file a killed build wrote whole (files
    are written under a temporary name and renamed) and that a rerun may keep."""
    if not path.exists():
        return False
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return False
    return array.shape == shape and array.dtype == dtype


def embedding_texts(store: PassageStore, first: int, last: int) -> list[str]:
    """What the model embeds for passages [first, last), in id order: the text template applied."""
    texts = [embedding_text(title, section, text) for _, title, section, text in store.iter_texts(first, last)]
    if len(texts) != last - first:
        raise RuntimeError(f"store returned {len(texts)} passages for ids [{first}, {last})")
    return texts


def missing_shards(shard_dir: Path, ranges: list[tuple[int, int, int]], dimension: int) -> list[tuple[int, int, int]]:
    """The (number, first, last) ranges whose shard is absent or incomplete: the work a build has left."""
    return [r for r in ranges if not npy_complete(shard_path(shard_dir, r[0]), (r[2] - r[1], dimension), np.float32)]


# One embedding task: (shard number, first passage id, last passage id + 1). It is all a back-end is given.
Task = tuple[int, int, int]


class Backend(Protocol):
    """Where shards get embedded: in this process, on a pool of device processes, or on a Ray cluster.

    A back-end runs `(shard, first, last)` tasks and nothing else; each task is written by `embed_shard`, so a
    shard file is the same whichever back-end made it, and a build started on one can be finished on another.
    """

    def run(self, tasks: list[Task], bar: tqdm) -> None:
        """Embed every task, `bar.update(rows)` as each finishes (a back-end may `set_description`)."""

    def lost(self, shard_dir: Path, missing: list[Task]) -> GroundsearchError:
        """The error for shards the back-end reported written that this process cannot read complete."""


def embed_shards(
    backend: Backend, shard_dir: Path, total: int, shard_size: int, dimension: int, progress: bool = True
) -> list[Path]:
    """Make sure every shard exists, handing the missing ones to `backend`; return their paths in id order.

    A complete shard is kept: this is the embedding stage's own resume check.
    """
    with stage_io("embedding", shard_dir):
        shard_dir.mkdir(parents=True, exist_ok=True)
    ranges = list(shard_ranges(total, shard_size))
    todo = missing_shards(shard_dir, ranges, dimension)
    if todo:
        done = total - sum(last - first for _, first, last in todo)
        with tqdm(
            total=total, initial=done, unit="passage", desc="embedding", disable=not progress, smoothing=0.1
        ) as bar:
            backend.run(todo, bar)
        left = missing_shards(shard_dir, todo, dimension)
        if left:  # every task said "done": a shard that is still not complete means the filesystem lost it
            raise backend.lost(shard_dir, left)
    return [shard_path(shard_dir, number) for number, _, _ in ranges]


@dataclass(frozen=True)
class InProcess:
    """The in-process back-end: one model, here, shard after shard."""

    store: PassageStore
    encoder: Callable[[], Encoder]  # loaded when the first task comes: a resume with every shard needs none
    shard_dir: Path
    batch_size: int | None = None

    def run(self, tasks: list[Task], bar: tqdm) -> None:
        encoder = self.encoder()
        for number, first, last in tasks:
            bar.update(embed_shard(self.store, encoder, self.shard_dir, number, first, last, self.batch_size))

    def lost(self, shard_dir: Path, missing: list[Task]) -> GroundsearchError:
        return BuildIOError(f"embedding: {len(missing)} shards written are not complete in {shard_dir}")


def embed_passages(
    store: PassageStore,
    encoder: Encoder,
    shard_dir: Path,
    total: int,
    shard_size: int,
    batch_size: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Embed in this process: `embed_shards` with the `InProcess` back-end."""
    backend = InProcess(store, lambda: encoder, shard_dir, batch_size)
    return embed_shards(backend, shard_dir, total, shard_size, encoder.dimension, progress)


def batch_for(batch_size: int | None, device: str) -> int:
    """The encoder batch size: the one asked for, else the device's default (256 on CUDA, 64 on the CPU)."""
    return batch_size or default_batch_size(device)


def weights_problem(model: ModelIdentity, weights_sha256: str, dimension: int) -> str | None:
    """Why a worker's model is not the build's (other weights or dimension), or None: shards of different
    models must never be mixed."""
    if weights_sha256 == model.weights_sha256 and dimension == model.dimension:
        return None
    return (
        f"loads other weights for {model.name} (sha256 {weights_sha256[:12]}…, {dimension}-d) than the build's "
        f"({model.weights_sha256[:12]}…, {model.dimension}-d)"
    )


def embed_shard(
    store: PassageStore,
    encoder: Encoder,
    shard_dir: Path,
    number: int,
    first: int,
    last: int,
    batch_size: int | None = None,
) -> int:
    """Write one shard, atomically: every back-end's task, so that each makes the same file. Where the shard has
    a seed (index_build.reuse), only its missing rows are embedded."""
    texts = embedding_texts(store, first, last)
    batch = batch_for(batch_size, encoder.device)
    seed = read_seed(shard_dir, number, last - first, encoder.dimension)
    if seed is None:
        vectors = encoder.encode(texts, batch_size=batch)
    else:
        vectors = seed.vectors
        if len(seed.missing):
            vectors[seed.missing] = encoder.encode([texts[i] for i in seed.missing], batch_size=batch)
    write_shard(shard_dir, number, vectors)
    with stage_io("embedding", shard_dir):
        seed_path(shard_dir, number).unlink(missing_ok=True)
    return last - first
