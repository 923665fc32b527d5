"""Reading FAISS files and asking an index what kind it is, shared by the builder and the retriever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss

from retriever.errors import IndexCorrupt


def read_faiss(path: Path) -> Any:
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "unreadable"
        raise IndexCorrupt(f"{path}: unreadable FAISS index ({reason}); rebuild the index") from exc


def ivf_of(index: Any) -> Any:
    """The IVF index inside `index` (through ID maps and pre-transforms), or None for non-IVF indexes."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
