"""Restricting a search to some documents: by their id in the index, their title, or the corpus file they came from.

A filter becomes the set of passage ids it selects, held as runs of consecutive ids (a document's passages have
consecutive ids, so a run per document at most). Each side searches only those: FAISS through an ID selector,
tantivy through range clauses on the passage id. Nothing is cut after the search, so a filtered search returns
k hits from inside the filter whenever it holds k passages.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from retriever.errors import FilterMatchesNothing, InvalidQuery
from retriever.store import PassageStore

# Singular spellings too, as the CLI (--title, --document, --source) and the API's query parameters name them.
_KEYS = {
    "documents": "documents",
    "document": "documents",
    "document_id": "documents",
    "titles": "titles",
    "title": "titles",
    "sources": "sources",
    "source": "sources",
}

Runs = tuple[tuple[int, int], ...]  # half-open [first, last) passage id ranges, sorted, not touching


@dataclass(frozen=True)
class Filter:
    """Which documents a search may return passages from.

    `documents` are document ids in the index (`Hit.document_id`), `titles` exact titles (`Hit.title`),
    `sources` corpus file names as `groundsearch info` lists them (a path is reduced to its file name). Within
    a field any value matches; fields given together must all match. An empty `Filter()` selects everything.
    """

    documents: tuple[int, ...] = ()
    titles: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        documents = _values(self.documents, "documents")
        for value in documents:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidQuery(f"filter documents must be document ids (whole numbers >= 0), got {value!r}")
        titles = _values(self.titles, "titles")
        sources = _values(self.sources, "sources")
        for value in (*titles, *sources):
            if not isinstance(value, str) or not value:
                raise InvalidQuery(f"filter titles and sources must be non-empty strings, got {value!r}")
        object.__setattr__(self, "documents", tuple(dict.fromkeys(documents)))
        object.__setattr__(self, "titles", tuple(dict.fromkeys(titles)))
        object.__setattr__(self, "sources", tuple(dict.fromkeys(PurePath(s).name for s in sources)))

    def __bool__(self) -> bool:
        return bool(self.documents or self.titles or self.sources)

    @classmethod
    def of(cls, value: Filter | Mapping[str, Any] | None) -> Filter | None:
        """A `Filter` from a `Filter`, a mapping such as `{"title": ["Paris"], "documents": [3]}`, or None.

        An empty filter is None: it restricts nothing.
        """
        if value is None or isinstance(value, Filter):
            return value or None
        if not isinstance(value, Mapping):
            raise InvalidQuery(f"filters must be a Filter or a mapping, got {type(value).__name__}")
        fields: dict[str, list[Any]] = {"documents": [], "titles": [], "sources": []}
        for key, given in value.items():
            if key not in _KEYS:
                raise InvalidQuery(f"unknown filter {key!r}; filter by {', '.join(sorted(set(_KEYS.values())))}")
            fields[_KEYS[key]] += _values(given, key)
        return cls(**{name: tuple(values) for name, values in fields.items()}) or None

    def to_dict(self) -> dict[str, list[Any]]:
        """The fields that restrict something, as lists: the JSON form the API takes."""
        return {name: list(values) for name, values in vars(self).items() if values}

    def describe(self) -> str:
        """`title 'Paris' or 'Lyon'; document 3`: the filter in words, for messages."""
        names = {"documents": "document", "titles": "title", "sources": "source"}
        return "; ".join(
            f"{names[name]} " + " or ".join(repr(v) for v in values) for name, values in vars(self).items() if values
        )


def _values(given: Any, name: str) -> list[Any]:
    if isinstance(given, (str, int)):
        return [given]
    if isinstance(given, Iterable):
        return list(given)
    raise InvalidQuery(f"filter {name} must be a value or a list of values, got {type(given).__name__}")


def as_runs(ids: Iterable[int]) -> Runs:
    """Sorted passage ids as half-open runs of consecutive ids: [0, 1, 2, 7] -> ((0, 3), (7, 8))."""
    runs: list[tuple[int, int]] = []
    for pid in sorted(set(ids)):
        if runs and runs[-1][1] == pid:
            runs[-1] = (runs[-1][0], pid + 1)
        else:
            runs.append((pid, pid + 1))
    return tuple(runs)


def merge_runs(runs: Sequence[tuple[int, int]]) -> Runs:
    """Runs sorted and joined where they touch or overlap."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(runs):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def run_count(runs: Runs) -> int:
    return sum(last - first for first, last in runs)


def faiss_selector(runs: Runs) -> Any:
    """A FAISS ID selector for the passages of `runs`: a range for one run, a batch (hash set) otherwise.

    The caller keeps it alive for as long as FAISS may use it: the search parameters only hold a pointer.
    """
    import faiss

    if len(runs) == 1:
        return faiss.IDSelectorRange(*runs[0])
    ids = np.concatenate([np.arange(first, last, dtype=np.int64) for first, last in runs])
    return faiss.IDSelectorBatch(ids)


class Selections:
    """Filters resolved to passage runs through the store, the latest few remembered: a title is looked up by a
    scan of the documents table, which a caller repeating one filter should pay once. Safe to share between threads."""

    def __init__(self, store: PassageStore, size: int = 256) -> None:
        self._store = store
        self._size = size
        self._known: dict[Filter, Runs] = {}
        self._lock = threading.Lock()

    def runs(self, chosen: Filter) -> Runs:
        """The passage id runs `chosen` selects; FilterMatchesNothing, naming the filter, when there are none."""
        with self._lock:
            runs = self._known.get(chosen)
        if runs is None:
            runs = merge_runs(self._store.document_runs(chosen.documents, chosen.titles, chosen.sources))
            with self._lock:
                if len(self._known) >= self._size:
                    self._known.pop(next(iter(self._known)))
                self._known[chosen] = runs
        if not runs:
            raise FilterMatchesNothing(
                f"no document matches the filter ({chosen.describe()}); titles and sources must match exactly, "
                "as hits show titles and `groundsearch info` shows source files"
            )
        return runs
