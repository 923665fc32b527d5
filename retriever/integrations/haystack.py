"""Haystack: `GroundsearchRetriever`, a component whose documents are verbatim passages with their provenance.

    pipeline = Pipeline()
    pipeline.add_component("retriever", GroundsearchRetriever(path="wiki.idx", top_k=4))
    documents = pipeline.run({"retriever": {"query": "who wrote the nicomachean ethics"}})["retriever"]["documents"]

Needs `pip install "groundsearch[haystack]"` (haystack-ai). This module sets nothing global; Haystack itself
sends usage telemetry unless `HAYSTACK_TELEMETRY_ENABLED=False` is in the environment before it is imported.

`filters` take groundsearch's own form (`{"titles": [...], "documents": [...], "sources": [...]}`) or Haystack's
for the same fields: `{"field": "meta.title", "operator": "==" or "in", "value": ...}` and an `"AND"` of such
conditions. Other fields and operators are refused: only those three are indexed for filtering.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from retriever.errors import FilterMatchesNothing, InvalidQuery
from retriever.filters import Filter
from retriever.integrations._common import (
    Searcher,
    check_k,
    document_id,
    metadata,
    missing_extra,
    open_path,
    open_url,
    search_options,
)

try:
    from haystack import Document, component, default_from_dict, default_to_dict
except ImportError as exc:
    raise missing_extra("haystack", "haystack-ai") from exc

__all__ = ["GroundsearchRetriever"]

_FIELDS = {"title": "titles", "document_id": "documents", "source": "sources"}


@component
class GroundsearchRetriever:
    """Search a groundsearch index from a Haystack pipeline: `Document(id=passage id, content=hit.text, meta=every
    Hit field, score=hit.score)`.

    Give the bundle's `path`, a server's `url` (a `RemoteRetriever`), or an open `retriever` (then `to_dict`
    records its path or URL). `top_k`, `mode`, `filters`, `highlight`, `nprobe` and `ef_search` are passed to
    `search`; `run` may override `top_k` and `filters` per call. A path is opened by `warm_up` (a pipeline calls
    it before its first run) or by the first `run`.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        url: str | None = None,
        retriever: Searcher | None = None,
        top_k: int = 10,
        mode: str | None = None,
        filters: dict[str, Any] | None = None,
        highlight: bool = True,
        nprobe: int | None = None,
        ef_search: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        if sum(given is not None for given in (path, url, retriever)) != 1:
            raise ValueError("give exactly one of path (an index bundle), url (a groundsearch server) or retriever")
        if retriever is not None:
            url = getattr(retriever, "url", None)
            path = None if url is not None else os.fspath(retriever.path)  # type: ignore[union-attr]
        self.path = os.fspath(path) if path is not None else None
        self.url = url
        self.top_k = check_k(top_k)
        self.mode = mode
        self.filters = filters
        self.highlight = highlight
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.timeout = timeout
        self._filter = haystack_filter(filters)
        self._retriever = retriever

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], k: int = 10, **options: Any) -> GroundsearchRetriever:
        """A component over the bundle at `path`; `options` as the constructor takes them."""
        return cls(os.fspath(path), top_k=k, **options)

    @classmethod
    def from_url(cls, url: str, k: int = 10, **options: Any) -> GroundsearchRetriever:
        """A component that searches through a `groundsearch serve` at `url`."""
        return cls(url=url, top_k=k, **options)

    def warm_up(self) -> None:
        """Open the index (or the client): once, before the first run."""
        if self._retriever is None:
            self._retriever = open_url(self.url, self.timeout) if self.url is not None else open_path(self.path or "")

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `top_k` passages that best match `query`, as Documents; `filters` here replace the constructor's."""
        self.warm_up()
        assert self._retriever is not None
        chosen = haystack_filter(filters) if filters is not None else self._filter
        options = search_options(
            {"mode": self.mode, "highlight": self.highlight, "nprobe": self.nprobe, "ef_search": self.ef_search}
        )
        options = {name: value for name, value in options.items() if value is not None}
        hits = self._retriever.search(query, k=check_k(top_k or self.top_k), filters=chosen, **options)
        return {
            "documents": [
                Document(id=document_id(hit), content=hit.text, meta=metadata(hit), score=hit.score) for hit in hits
            ]
        }

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            path=self.path,
            url=self.url,
            top_k=self.top_k,
            mode=self.mode,
            filters=self.filters,
            highlight=self.highlight,
            nprobe=self.nprobe,
            ef_search=self.ef_search,
            timeout=self.timeout,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundsearchRetriever:
        return default_from_dict(cls, data)  # type: ignore[no-any-return]


def haystack_filter(filters: Mapping[str, Any] | None) -> Filter | None:
    """A `Filter` from groundsearch's own filter mapping or from Haystack's filter syntax for the same fields."""
    if filters is None or "operator" not in filters:
        return Filter.of(filters)
    chosen: dict[str, set[Any]] = {}
    for name, values in _conditions(filters):
        chosen[name] = chosen[name] & values if name in chosen else values  # AND of two conditions on one field
        if not chosen[name]:
            raise FilterMatchesNothing(f"the filter's conditions on {name} exclude each other: {dict(filters)}")
    return Filter(**{name: tuple(sorted(values)) for name, values in chosen.items()}) or None


def _conditions(filters: Mapping[str, Any]) -> list[tuple[str, set[Any]]]:
    operator = filters.get("operator")
    if operator == "AND" and "conditions" in filters:
        return [condition for part in filters["conditions"] for condition in _conditions(part)]
    field = str(filters.get("field", "")).removeprefix("meta.")
    if field not in _FIELDS or operator not in ("==", "in"):
        raise InvalidQuery(
            f"cannot filter on {filters.get('field')!r} with {operator!r}: groundsearch filters meta.title, "
            "meta.document_id and meta.source, with ==, in, and AND of those"
        )
    value = filters.get("value")
    values = set(value) if operator == "in" and isinstance(value, (list, tuple, set)) else {value}
    return [(_FIELDS[field], values)]
