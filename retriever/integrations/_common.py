"""What every adapter shares: opening a searcher, checking search options, a hit's metadata, the missing-extra error."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

from retriever.filters import Filter
from retriever.hit import Hit

if TYPE_CHECKING:
    from retriever.remote import RemoteRetriever
    from retriever.retriever import Retriever

# What the adapters pass through to `search`; a RemoteRetriever takes all but `fusion`, and `rerank` as a bool.
SEARCH_OPTIONS = ("mode", "filters", "highlight", "nprobe", "ef_search", "fusion", "rerank")


# What an adapter wraps: the same `search` (and `search_batch`) over a bundle in this process or over a server.
Searcher = Union["Retriever", "RemoteRetriever"]


def missing_extra(extra: str, package: str) -> ImportError:
    """The one-line error for an adapter whose framework is not installed."""
    return ImportError(
        f'retriever.integrations.{extra} needs {package}, which is not installed: pip install "groundsearch[{extra}]"'
    )


def open_path(path: str | os.PathLike[str]) -> Searcher:
    from retriever.retriever import Retriever

    return Retriever.open(path)


def open_url(url: str, timeout: float = 30.0) -> Searcher:
    from retriever.remote import RemoteRetriever

    return RemoteRetriever(url, timeout=timeout)


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")
    return k


def search_options(options: dict[str, Any]) -> dict[str, Any]:
    """`options` checked against what `search` takes; `filters` made a `Filter`, so a bad one fails here."""
    unknown = sorted(set(options) - set(SEARCH_OPTIONS))
    if unknown:
        raise TypeError(f"unknown search option {unknown[0]!r}; the options are {', '.join(SEARCH_OPTIONS)}")
    checked = dict(options)
    if "filters" in checked:
        checked["filters"] = Filter.of(checked["filters"])
    return checked


def metadata(hit: Hit) -> dict[str, Any]:
    """Every field of the hit but its text (the document's content), its permalink, and a one-line citation.

    Built from `Hit.to_dict`, so a field added to `Hit` reaches every framework without touching the adapters.
    """
    fields = {name: list(value) if isinstance(value, tuple) else value for name, value in hit.to_dict().items()}
    fields.pop("text")
    fields["citation"] = hit.citation()
    return fields


def document_id(hit: Hit) -> str:
    """A framework document's id: the passage id, so that `retriever.get(int(id))` fetches it again."""
    return str(hit.passage_id)
