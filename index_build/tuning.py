"""Choose an approximate index's default search parameter by measuring its recall against exact search.

An approximate index (IVF of any kind, HNSW) trades recall for speed through one knob: `nprobe` (inverted
lists visited) or `efSearch` (HNSW candidate list length). A fixed default is wrong for most corpora, either
slow or silently lossy, so the build measures instead:

- queries: the opening words (QUERY_WORDS) of an evenly spaced, deterministic sample of the corpus's
  passages (default 1,000), embedded by the index's model. Measured on SQuAD (IVF32,Flat), whole passage
  vectors as queries overstate recall: they sit on the data, real questions do not. Passage vectors chose
  nprobe=2 (0.982 on passages, 0.905 on 1,000 real questions); 16-word openings give 0.899 / 0.954 at
  nprobe 2 / 4 where the questions give 0.905 / 0.945, so they choose what questions need;
- truth: their exact top-10 by brute force over every embedding shard, streamed shard by shard into a
  running top-k, so memory stays bounded by one shard whatever the corpus size;
- without an encoder (`query_vectors` not given), the sampled passage vectors themselves are the queries,
  and each query's own passage is dropped from both lists (11 are asked for), since a passage always finds
  itself and would inflate the figure;
- recall@10: the share of the exact top-10 that the index's own search returns, for nprobe 1, 2, 4, ...
  up to nlist or efSearch 16, 32, ... up to 1024; the smallest value reaching the target wins. Where recall
  stops growing below the target (lossy codes plateau), the sweep stops, and the smallest value within
  half a point (MISS_TOLERANCE) of the best recall seen is kept.

Every step is deterministic, so a resumed build that tunes again records the same values.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_build.faults import BuildError
from retriever.faiss_io import hnsw_of, is_exact, ivf_of
from retriever.model import Encoder
from retriever.rescore import ExactVectors
from retriever.store import PassageStore

TARGET_RECALL = 0.95
TUNING_QUERIES = 1000
# The sweep stops early when PLATEAU_STEPS doublings in a row each gain less than PLATEAU_GAIN recall@10 (on
# 1,000 queries, 0.001 is one neighbour in a thousand queries' top-10s: noise, not progress).
PLATEAU_STEPS = 2
PLATEAU_GAIN = 0.001
# Where the target is missed, the default is the smallest value whose recall is within this of the best seen.
MISS_TOLERANCE = 0.005
RECALL_K = 10
EF_SEARCH_VALUES = (16, 32, 64, 128, 256, 512, 1024)
QUERY_WORDS = 16


@dataclass(frozen=True)
class Tuning:
    """What one tuning run measured: the chosen parameter and every value tried, with its recall@10."""

    param: str | None  # "nprobe", "efSearch", or None for an approximate index without a knob (PQ, SQ, ...)
    value: int | None
    recall: float
    target: float
    queries: int
    tried: tuple[tuple[int, float], ...]
    seconds: float
    source: str = "passage vectors"

    @property
    def met(self) -> bool:
        return self.recall >= self.target

    def search_params(self) -> dict[str, int]:
        return {self.param: self.value} if self.param is not None and self.value is not None else {}

    def record(self) -> dict[str, Any]:
        """The manifest's `ann` entry. The time is left out: a resumed build must record the same values."""
        return {
            f"recall@{RECALL_K}": self.recall,
            "target": self.target,
            "met": self.met,
            "queries": self.queries,
            "queries_from": self.source,
            "params": self.search_params(),
            "tried": [[value, recall] for value, recall in self.tried],
        }


def check_target(target: float) -> None:
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0.0 < target <= 1.0:
        raise BuildError(f"--target-recall must be a number in (0, 1], got {target!r}")


def tune_search(
    index: Any,
    shards: Sequence[Path],
    target: float = TARGET_RECALL,
    queries: int = TUNING_QUERIES,
    query_vectors: np.ndarray | None = None,
    source: str = "passage vectors",
    rescorer: ExactVectors | None = None,
) -> Tuning | None:
    """Measure `index` against exact search over the shards' vectors; None for an exact (Flat) index.

    `query_vectors` (e.g. from `opening_queries`) are the queries when given; else `queries` sampled passage
    vectors are, each without its own passage.
    """
    check_target(target)
    if is_exact(index):
        return None
    began = time.perf_counter()
    lengths = [int(np.load(s, mmap_mode="r").shape[0]) for s in shards]
    total = sum(lengths)
    own: np.ndarray | None
    if query_vectors is None:
        own = sample_ids(total, queries)
        xq = _gather(shards, lengths, own) if len(own) else np.zeros((0, 1), dtype=np.float32)
    else:
        own, xq = None, np.ascontiguousarray(query_vectors, dtype=np.float32)
    k = min(RECALL_K, total - (1 if own is not None else 0))
    if k < 1 or len(xq) < 1:
        return None
    extra = 1 if own is not None else 0
    exact = _drop_self(exact_top(xq, shard_blocks(shards), k + extra), own, k)
    param, values = _knob(index)
    if param is None:
        recall = _recall(index, xq, own, exact, k, None, rescorer)
        return Tuning(None, None, recall, target, len(xq), (), time.perf_counter() - began, source)
    tried: list[tuple[int, float]] = []
    for value in values:  # ascending: the first value that reaches the target is the smallest
        tried.append((value, _recall(index, xq, own, exact, k, _params(param, value), rescorer)))
        if tried[-1][1] >= target or _plateaued(tried):
            break
    value, recall = tried[-1] if tried[-1][1] >= target else _best(tried)
    return Tuning(param, value, recall, target, len(xq), tuple(tried), time.perf_counter() - began, source)


def tune_with_openings(
    index: Any,
    shards: Sequence[Path],
    store: PassageStore,
    encoder: Encoder,
    target: float = TARGET_RECALL,
    queries: int = TUNING_QUERIES,
    batch_size: int = 64,
    rescorer: ExactVectors | None = None,
) -> Tuning | None:
    """`tune_search` with question-sized queries: the openings of sampled passages, embedded by `encoder`."""
    check_target(target)
    if is_exact(index):
        return None  # nothing to tune, nothing to embed
    ids = sample_ids(store.count(), queries)
    stored = store.fetch([int(i) for i in ids])
    texts = opening_texts([stored[int(i)].text for i in ids])
    vectors = encoder.encode(texts, batch_size=batch_size)
    source = f"the first {QUERY_WORDS} words of sampled passages"
    return tune_search(index, shards, target, queries, query_vectors=vectors, source=source, rescorer=rescorer)


def opening_texts(texts: Sequence[str], words: int = QUERY_WORDS) -> list[str]:
    """Question-sized queries: the first `words` words of each passage (see the module docstring)."""
    return [" ".join(text.split()[:words]) for text in texts]


def sample_ids(total: int, queries: int) -> np.ndarray:
    """`queries` distinct passage ids spread evenly over [0, total): the same ones on every run."""
    n = min(queries, total)
    return (np.arange(n, dtype=np.int64) * total) // n


def exact_top(xq: np.ndarray, blocks: Iterable[tuple[np.ndarray, np.ndarray]], k: int) -> np.ndarray:
    """Ids of the exact top-k by inner product over (ids, vectors) blocks, one block in memory at a time."""
    heap = faiss.ResultHeap(len(xq), k, keep_max=True)
    for ids, xb in blocks:
        xb = np.ascontiguousarray(xb, dtype=np.float32)
        if not len(xb):
            continue
        scores, found = faiss.knn(xq, xb, min(k, len(xb)), metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(scores, np.where(found >= 0, ids[np.maximum(found, 0)], -1))
    heap.finalize()
    return np.asarray(heap.I)


def shard_blocks(shards: Sequence[Path]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(passage ids, vectors) of each embedding shard in turn; shard i follows shard i - 1 in id order."""
    first = 0
    for shard in shards:
        xb = np.load(shard, mmap_mode="r")
        yield np.arange(first, first + len(xb), dtype=np.int64), xb
        first += len(xb)


def recall_at(found: Sequence[Sequence[int]], exact: Sequence[Sequence[int]]) -> float:
    """Mean share of each exact list that the found list holds (order ignored)."""
    shares = [len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True) if len(e)]
    return round(float(np.mean(shares)), 4) if shares else 1.0


def _knob(index: Any) -> tuple[str | None, list[int]]:
    ivf = ivf_of(index)
    if ivf is not None:
        values = [2**i for i in range(ivf.nlist.bit_length()) if 2**i < ivf.nlist]
        return "nprobe", [*values, int(ivf.nlist)]
    if hnsw_of(index) is not None:
        return "efSearch", list(EF_SEARCH_VALUES)
    return None, []


def _params(param: str, value: int) -> Any:
    if param == "nprobe":
        return faiss.SearchParametersIVF(nprobe=value)  # type: ignore[call-arg]
    return faiss.SearchParametersHNSW(efSearch=value)  # type: ignore[attr-defined]


def _recall(
    index: Any,
    xq: np.ndarray,
    own: np.ndarray | None,
    exact: list[list[int]],
    k: int,
    params: Any,
    rescorer: ExactVectors | None = None,
) -> float:
    """recall@k of the index's search as queries get it: re-scored exactly where the bundle keeps vectors."""
    wanted = k + (1 if own is not None else 0)
    asked = max(wanted, rescorer.depth) if rescorer is not None else wanted
    _, found = index.search(xq, asked, params=params)
    if rescorer is not None:
        rows = rescorer.rescore(xq, [[(int(p), 0.0) for p in row if p >= 0] for row in found], wanted)
        return recall_at(_drop_self([[p for p, _ in row] for row in rows], own, k), exact)
    return recall_at(_drop_self(found, own, k), exact)


def _drop_self(rows: Any, own: np.ndarray | None, k: int) -> list[list[int]]:
    """Each row without FAISS's -1 padding (and its query's own id, where queries are passages), cut to k."""
    ids = own if own is not None else np.full(len(rows), -1, dtype=np.int64)
    return [[int(p) for p in row if p >= 0 and p != mine][:k] for row, mine in zip(rows, ids, strict=True)]


def _plateaued(tried: list[tuple[int, float]]) -> bool:
    """Whether the last PLATEAU_STEPS doublings each gained less than PLATEAU_GAIN: lossy codes (PQ, SQ)
    stop improving well below the target, and at Wikipedia scale the larger values are the slow ones (nprobe
    = nlist scans every code of 21 M passages for each of the 1,000 queries), for nothing."""
    if len(tried) <= PLATEAU_STEPS:
        return False
    recent = [recall for _, recall in tried[-PLATEAU_STEPS - 1 :]]
    return all(later - earlier < PLATEAU_GAIN for earlier, later in zip(recent[:-1], recent[1:], strict=True))


def _best(tried: list[tuple[int, float]]) -> tuple[int, float]:
    """When no value reaches the target: the smallest value within MISS_TOLERANCE of the best recall seen.

    Lossy codes plateau, and past the knee each doubling buys a fraction of a point for twice the time: at
    21 M passages (IVF4096,PQ192np) nprobe 512 gave 0.882 at 250 ms a query where 64 gave 0.878 for an
    eighth of the scanning. A query that wants the last fraction can still ask for it (--nprobe).
    """
    best = max(recall for _, recall in tried)
    return next(t for t in tried if t[1] >= best - MISS_TOLERANCE)


def _gather(shards: Sequence[Path], lengths: Sequence[int], ids: np.ndarray) -> np.ndarray:
    """The vectors of passages `ids` (sorted), read from the shards without loading them whole."""
    parts, first = [], 0
    for shard, length in zip(shards, lengths, strict=True):
        local = ids[(ids >= first) & (ids < first + length)] - first
        if len(local):
            parts.append(np.asarray(np.load(shard, mmap_mode="r")[local]))
        first += length
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
