"""Take the vectors of unchanged passages from older bundles (`build --reuse OLD`) instead of embedding them again.

A month of Wikipedia edits touches a small share of passages; embedding is nearly all of a CPU build's time.
So before the embedding back-end runs, every passage's reuse key (index_build.vector_keys) is looked up in the
old bundles' `vectors.keys.npy`; a shard whose every row is found is written here from the old float32 vectors,
and a shard with some rows found gets a seed (index_build.embed.Seed) so that whichever back-end embeds it
encodes only the rest. The stages after embedding are untouched: an IVF or PQ index is trained on the new
vectors as a build from scratch would train it.

Only the float32 copy (`vectors.f32.npy`) is read: the float16 copy of `--rescore` is 1e-3 away from the model's
vectors and a FAISS index's codes are lossy, while float32 rows are the model's own output, so a refreshed
bundle's vectors equal a scratch build's to float rounding. Every row taken is checked once more against the
key it was found by, so a lookup that went wrong raises instead of giving a passage another's vector.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index_build.embed import Seed, seed_path, write_seed, write_shard
from index_build.faults import BuildError, stage_io
from index_build.vector_keys import KEY_BYTES, KeyModel
from retriever.bundle import MANIFEST_NAME, TEXT_TEMPLATE, VECTOR_KEY_VERSION, Manifest, read_manifest
from retriever.errors import GroundsearchError

_LEAVE_OUT = "leave it out of --reuse"


class ReuseRefused(BuildError):
    """A bundle given to --reuse cannot lend its vectors to this build: not a bundle, another model, damaged."""


@dataclass(frozen=True)
class BuildModel:
    """What this build embeds with, for comparing an old bundle's against it."""

    name: str
    key: KeyModel
    dimension: int


def refusal(manifest: Manifest, model: BuildModel) -> str | None:
    """Why the vectors of the bundle with `manifest` cannot stand for this build's, or None when they can.

    The reuse keys would never match in any of these cases; refusing says why, where finding nothing would
    silently embed everything again.
    """
    record = manifest.reusable_vectors
    theirs = manifest.model
    if theirs.weights_sha256 != model.key.weights_sha256 or theirs.dimension != model.dimension:
        return (
            f"its vectors come from another model, {theirs.name} (weights sha256 {theirs.weights_sha256[:12]}…, "
            f"{theirs.dimension}-d), this build embeds with {model.name} ({model.key.weights_sha256[:12]}…, "
            f"{model.dimension}-d)"
        )
    if record is None:
        return "it keeps no float32 vectors to reuse (built before bundles kept them, or with --no-keep-vectors)"
    if record.key_version != VECTOR_KEY_VERSION:
        return f"its reuse keys are version {record.key_version}, this groundsearch makes version {VECTOR_KEY_VERSION}"
    if record.text_template != TEXT_TEMPLATE or manifest.text_template != TEXT_TEMPLATE:
        return f"its passages were embedded as {record.text_template!r}, this build embeds {TEXT_TEMPLATE!r}"
    if record.max_length != model.key.max_length:
        return (
            f"its model read at most {record.max_length} tokens of a passage, this build's reads "
            f"{model.key.max_length}, so long passages embed differently"
        )
    if record.weights_sha256 != model.key.weights_sha256 or record.dimension != model.dimension:
        return "its reusable vectors record names another model than its manifest does"
    return None


@dataclass
class VectorSource:
    """One old bundle's float32 vectors and keys, memory-mapped, with its keys sorted for lookup.

    The lookup sorts the keys' first 8 bytes (as an unsigned integer) once: at 21 M passages that is 168 MB and
    a couple of seconds, against reading the whole keys file anyway; a full 32-byte comparison then settles
    each match, so two keys sharing a prefix are never confused.
    """

    path: Path
    vectors: np.ndarray
    keys: np.ndarray
    _sorted: np.ndarray
    _order: np.ndarray

    @classmethod
    def open(cls, path: str | os.PathLike[str], model: BuildModel) -> VectorSource:
        """Open an old bundle for reuse, or raise `ReuseRefused` with the one-line reason it cannot serve."""
        folder = Path(path)
        where = f"--reuse {folder}"
        if not folder.exists():
            raise ReuseRefused(f"{where}: no such index bundle; {_LEAVE_OUT}")
        if not (folder / MANIFEST_NAME).is_file():
            raise ReuseRefused(f"{where}: not an index bundle (no {MANIFEST_NAME} in it); {_LEAVE_OUT}")
        try:
            manifest = read_manifest(folder)  # every listed file there, at its recorded size
        except GroundsearchError as exc:
            reason = str(exc).removeprefix(f"{folder}: ")
            raise ReuseRefused(f"{where}: {reason.replace('rebuild the index', _LEAVE_OUT)}") from None
        problem = refusal(manifest, model)
        if problem is not None:
            raise ReuseRefused(f"{where}: {problem}; {_LEAVE_OUT}")
        record = manifest.reusable_vectors
        assert record is not None  # refusal() says why otherwise
        shape = (manifest.passages, record.dimension)
        vectors = _mapped(folder, record.vectors, np.dtype(np.float32), shape, where)
        keys = _mapped(folder, record.keys, np.dtype(np.uint8), (manifest.passages, KEY_BYTES), where)
        prefixes = _prefixes(keys)
        order = np.argsort(prefixes, kind="stable")
        return cls(folder, vectors, keys, prefixes[order], order)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The row holding each of `keys` (uint8 (n, 32)), or -1 where this bundle has none."""
        prefixes = _prefixes(keys)
        at = np.searchsorted(self._sorted, prefixes)
        rows = np.full(len(keys), -1, dtype=np.int64)
        inside = np.nonzero(at < len(self._sorted))[0]
        candidates = inside[self._sorted[at[inside]] == prefixes[inside]]
        first = self._order[at[candidates]]
        same = np.all(self.keys[first] == keys[candidates], axis=1)
        rows[candidates[same]] = first[same]
        for i in candidates[~same]:  # another key with the same first 8 bytes: walk the run of equal prefixes
            j = int(at[i]) + 1
            while j < len(self._sorted) and self._sorted[j] == prefixes[i]:
                if np.array_equal(self.keys[self._order[j]], keys[i]):
                    rows[i] = self._order[j]
                    break
                j += 1
        return rows

    def take(self, rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The float32 vectors of `rows`, after checking that each row's stored key is the one it stands for."""
        order = np.argsort(rows, kind="stable")  # ascending rows read the mapped files front to back
        ascending = rows[order]
        stored = self.keys[ascending]
        wrong = np.nonzero(np.any(stored != keys[order], axis=1))[0]
        if len(wrong):
            row = int(ascending[wrong[0]])
            raise ReuseRefused(
                f"--reuse {self.path}: the key stored at row {row} is not the key that row was taken for; "
                f"check the bundle with `groundsearch verify {self.path}`, or {_LEAVE_OUT}"
            )
        out = np.empty((len(rows), self.vectors.shape[1]), dtype=np.float32)
        out[order] = self.vectors[ascending]
        return out


def open_sources(paths: Sequence[str | os.PathLike[str]], model: BuildModel) -> list[VectorSource]:
    """Every --reuse bundle, checked; the first refusal is raised."""
    return [VectorSource.open(path, model) for path in paths]


@dataclass(frozen=True)
class ShardPlan:
    """Where each row of one shard comes from: `source` is an index into the sources, or -1 (to embed)."""

    number: int
    first: int
    last: int
    source: np.ndarray
    rows: np.ndarray

    @property
    def reused(self) -> int:
        return int(np.count_nonzero(self.source >= 0))


def plan_shards(
    sources: Sequence[VectorSource], keys: np.ndarray, todo: Sequence[tuple[int, int, int]]
) -> list[ShardPlan]:
    """Look every row of the shards still to embed up in the sources, the first source that has it winning.
    Nothing is written: the build records the counts before any file depends on them."""
    plans = []
    for number, first, last in todo:
        wanted = np.asarray(keys[first:last])
        source = np.full(last - first, -1, dtype=np.int32)
        rows = np.full(last - first, -1, dtype=np.int64)
        for index, vectors in enumerate(sources):
            left = np.nonzero(source < 0)[0]
            if not len(left):
                break
            found = vectors.find(wanted[left])
            hit = found >= 0
            source[left[hit]] = index
            rows[left[hit]] = found[hit]
        plans.append(ShardPlan(number, first, last, source, rows))
    return plans


def write_plans(
    plans: Sequence[ShardPlan], sources: Sequence[VectorSource], keys: np.ndarray, shard_dir: Path, dimension: int
) -> None:
    """Write each planned shard whose every row was found, and a seed for each with some found; remove the stale
    seed of a shard with none (an earlier run's, made from other bundles)."""
    for plan in plans:
        if plan.reused == 0:
            with stage_io("embedding", shard_dir):
                seed_path(shard_dir, plan.number).unlink(missing_ok=True)
            continue
        wanted = np.asarray(keys[plan.first : plan.last])
        vectors = np.zeros((plan.last - plan.first, dimension), dtype=np.float32)
        for index, source in enumerate(sources):
            mine = np.nonzero(plan.source == index)[0]
            if len(mine):
                vectors[mine] = source.take(plan.rows[mine], wanted[mine])
        missing = np.nonzero(plan.source < 0)[0]
        if len(missing):
            write_seed(shard_dir, plan.number, Seed(vectors, missing))
        else:
            write_shard(shard_dir, plan.number, vectors)
            with stage_io("embedding", shard_dir):
                seed_path(shard_dir, plan.number).unlink(missing_ok=True)


def _mapped(folder: Path, name: str, dtype: np.dtype, shape: tuple[int, int], where: str) -> np.ndarray:
    """A bundle's .npy file memory-mapped, refused in one line unless it holds `dtype` of `shape`."""
    try:
        array: np.ndarray = np.load(folder / name, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise ReuseRefused(f"{where}: {name} is damaged ({exc}); {_LEAVE_OUT}") from None
    if array.dtype != dtype or array.shape != shape:
        raise ReuseRefused(
            f"{where}: {name} is damaged: it holds {array.dtype} of shape {array.shape}, the manifest says {dtype} of "
            f"{shape}; {_LEAVE_OUT}"
        )
    return array


def _prefixes(keys: np.ndarray) -> np.ndarray:
    """Each key's first 8 bytes as one unsigned integer (big-endian, so integer order is byte order)."""
    head = np.ascontiguousarray(keys[:, :8])
    return head.view(">u8").ravel().astype(np.uint64)


__all__ = [
    "BuildModel",
    "ReuseRefused",
    "ShardPlan",
    "VectorSource",
    "open_sources",
    "plan_shards",
    "refusal",
    "write_plans",
]
