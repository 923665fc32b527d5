"""Exact re-scoring of a compressed index's candidates from the bundle's own float16 copy of the vectors.

A PQ or SQ index ranks by approximate distances, so the true nearest passages can be found yet ranked below
others. Re-scoring reads the stored vectors of each query's top candidates (memory-mapped: only those rows
are touched) and ranks them by the exact inner product. It costs disk, 2 bytes per dimension per passage
(768 bytes at 384 dimensions), and no memory beyond the page cache; it only helps an index whose codes are
lossy, which is why `build --rescore` is an option and not the default.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from retriever.errors import IndexCorrupt

VECTORS_NAME = "vectors.f16.npy"
RESCORE_DEPTH = 100  # candidates per query read back and re-ranked exactly


class ExactVectors:
    """The bundle's float16 vectors, in passage-id order, read-only and memory-mapped."""

    def __init__(self, path: Path, passages: int, dimension: int, depth: int = RESCORE_DEPTH) -> None:
        try:
            self._vectors = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"{path}: unreadable vector file ({exc}); rebuild the index") from None
        if self._vectors.shape != (passages, dimension) or self._vectors.dtype != np.float16:
            raise IndexCorrupt(
                f"{path}: holds {self._vectors.dtype} vectors of shape {self._vectors.shape}, the manifest says "
                f"float16 of ({passages}, {dimension}); rebuild the index"
            )
        self.depth = depth

    def blocks(self, size: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(passage ids, float32 vectors) in blocks of `size` rows: the exact vectors, for measuring the index."""
        for first in range(0, len(self._vectors), size):
            block = np.asarray(self._vectors[first : first + size], dtype=np.float32)
            yield np.arange(first, first + len(block), dtype=np.int64), block

    def rescore(
        self, queries: np.ndarray, candidates: list[list[tuple[int, float]]], depth: int
    ) -> list[list[tuple[int, float]]]:
        """Each query's candidates re-ranked by exact inner product, best `depth` kept."""
        ranked: list[list[tuple[int, float]]] = []
        for query, row in zip(queries, candidates, strict=True):
            if not row:
                ranked.append([])
                continue
            ids = np.fromiter((pid for pid, _ in row), dtype=np.int64, count=len(row))
            order = np.argsort(ids)  # ascending rows read the mapped file front to back
            vectors = np.asarray(self._vectors[ids[order]], dtype=np.float32)
            scores = np.empty(len(ids), dtype=np.float32)
            scores[order] = vectors @ np.asarray(query, dtype=np.float32)
            best = np.argsort(-scores, kind="stable")[:depth]
            ranked.append([(int(ids[i]), float(scores[i])) for i in best])
        return ranked
