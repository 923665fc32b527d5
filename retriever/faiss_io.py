"""Reading FAISS files and asking an index what kind it is, shared by the builder and the retriever."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import faiss

from retriever.errors import IndexCorrupt

# Memory-mapped reading: an IVF index's inverted lists (IO_FLAG_MMAP: OnDiskInvertedLists over the file
# itself) and a flat index's codes (IO_FLAG_MMAP_IFC) stay in the file; only the centroids, the rotation and
# the codebooks are read into memory. Opening takes milliseconds whatever the size, and the pages a search
# touches live in the page cache (shared, clean, evictable), not in the process's private memory. Read-only:
# the query side never changes an index. Fast-scan indexes (PQ...x4fs) keep their block lists in memory.
MMAP_FLAGS = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
MMAP_ANY_FLAGS = MMAP_FLAGS | faiss.IO_FLAG_MMAP_IFC


def read_faiss(path: Path, mmap: bool = True) -> Any:
    """Read an index; with `mmap` (the default) its bulk stays in the file, mapped (see MMAP_FLAGS).

    Both mapping flags together serve flat, HNSW and fast-scan files; FAISS refuses them together for IVF
    array lists, and does so before reading any list, so that refusal costs little and IVF is read again
    with IO_FLAG_MMAP alone.
    """
    try:
        if not mmap:
            return faiss.read_index(str(path))
        try:
            return faiss.read_index(str(path), MMAP_ANY_FLAGS)
        except RuntimeError:
            return faiss.read_index(str(path), MMAP_FLAGS)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "unreadable"
        raise IndexCorrupt(f"{path}: unreadable FAISS index ({reason}); rebuild the index") from exc


def ivf_of(index: Any) -> Any:
    """The IVF index inside `index` (through ID maps and pre-transforms), or None for non-IVF indexes."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def inner_index(index: Any, through_transforms: bool = False) -> Any:
    """`index` without its ID-map layers (and pre-transforms, when asked): the index that does the search."""
    wrappers: tuple[type, ...] = (faiss.IndexIDMap, faiss.IndexIDMap2)
    if through_transforms:
        wrappers += (faiss.IndexPreTransform,)
    current: Any = faiss.downcast_index(index)
    while isinstance(current, wrappers):
        current = faiss.downcast_index(cast(Any, current).index)
    return current


def hnsw_of(index: Any) -> Any:
    """The HNSW index inside `index` (through ID maps and pre-transforms), or None for other kinds.

    FAISS hands per-call SearchParameters down through those wrappers, so `efSearch` set on the outer index
    reaches this one.
    """
    inner = inner_index(index, through_transforms=True)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def is_exact(index: Any) -> bool:
    """True when a search of `index` is brute force over the stored vectors themselves (`Flat`): nothing to tune,
    and its recall against exact search is 1 by definition."""
    return isinstance(inner_index(index, through_transforms=False), faiss.IndexFlat)


def resident_bytes(field: str = "VmRSS") -> int:
    """This process's resident memory from /proc/self/status (VmRSS: all of it; RssAnon: private memory only,
    what a read into memory costs; RssFile: mapped files and libraries), or 0 where /proc is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def faiss_memory(path: Path) -> dict[str, Any]:
    """What opening `path` as the retriever does costs: the file's size, the private resident memory it adds
    (RssAnon growth over the read, in this process) and the seconds it takes, so that `groundsearch info` shows
    mmap working.

    Cheap for memory-mapped kinds (milliseconds, a few MB); other kinds are read whole, as Retriever.open does.
    """
    before = resident_bytes("RssAnon")
    began = time.perf_counter()
    index = read_faiss(path)
    seconds = time.perf_counter() - began
    # Private memory only: a mapped index's pages are file-backed (page cache, shared and evictable), and the
    # first read's library pages would otherwise count too.
    grown = max(0, resident_bytes("RssAnon") - before)
    ivf = ivf_of(index)
    if ivf is not None:
        mapped = isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)
    else:
        mapped = is_exact(index)  # IO_FLAG_MMAP_IFC maps flat codes; HNSW graphs are read whole
    del index
    return {
        "file_bytes": path.stat().st_size,
        "resident_bytes": grown,
        "open_seconds": round(seconds, 4),
        "memory_mapped": mapped,
    }
