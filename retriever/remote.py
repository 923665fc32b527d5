"""A client for `groundsearch serve`: the `Retriever` interface over the JSON API, so that many processes share
one server (one model, one index in memory) instead of each opening the bundle.

Standard library only (urllib, json): the query-only install has everything it needs. Every call it makes is
read-only, so a call that could not reach the server, or met a gateway's 502/503/504, is tried again; an answer
that is slow is not (a second try would only add load). The server's refusals become the library's exceptions:
422 -> InvalidQuery (FilterMatchesNothing for a filter that matches nothing), 404 -> PassageNotFound.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from retriever.errors import (
    FilterMatchesNothing,
    InvalidQuery,
    PassageNotFound,
    ServerError,
    ServerUnavailable,
)
from retriever.filters import Filter
from retriever.hit import Found, Hit, SearchResult, Span
from retriever.retriever import MODES

_HIT_FIELDS = frozenset(f.name for f in fields(Hit))
_RETRIED_STATUSES = frozenset({502, 503, 504})  # a proxy in front of a server that is starting or restarting


class RemoteRetriever:
    """Search the index a `groundsearch serve` serves: `search`, `search_batch` and `get` as `Retriever` has them,
    returning the same `Hit`s.

    `timeout` is seconds per HTTP request; `retries` how many more times a request that found no server is tried,
    waiting `backoff`, then twice that, and so on. Safe to share between threads (each call is its own request).
    """

    def __init__(self, url: str, *, timeout: float = 30.0, retries: int = 2, backoff: float = 0.2) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidQuery(f"not a server URL: {url!r}; give one such as http://127.0.0.1:8000")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RemoteRetriever({self.url!r})"

    def info(self) -> dict[str, Any]:
        """The server's `/api/info`: model, counts, modes and its limits (fetched once)."""
        if self._info is None:
            self._info = self._request("GET", "/api/info")
        return self._info

    def __len__(self) -> int:
        return int(self.info()["passages"])

    @property
    def modes(self) -> tuple[str, ...]:
        """The search modes the server's index supports, in `MODES` order as `Retriever.modes` gives them."""
        return tuple(mode for mode in MODES if mode in self.info()["modes"])

    @property
    def default_mode(self) -> str:
        return str(self.info()["modes"][0])

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        highlight: bool = True,
        rerank: bool | None = None,
        filters: Filter | Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The k passages that best match `query`, best first, as `Retriever.search`. `rerank` turns the server's
        reranker (`serve --rerank`) off with False; the fusion is the server's. Queries longer than the server's
        `max_query_chars`, and k above its `max_k`, are refused (InvalidQuery)."""
        return self.search_with_status(
            query, k, mode=mode, nprobe=nprobe, ef_search=ef_search, highlight=highlight, rerank=rerank, filters=filters
        ).hits

    def search_with_status(
        self,
        query: str,
        k: int = 10,
        *,
        min_confidence: float | None = None,
        mode: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        highlight: bool = True,
        rerank: bool | None = None,
        filters: Filter | Mapping[str, Any] | None = None,
    ) -> SearchResult:
        """`search`, and whether the index has a good match at all, as `Retriever.search_with_status`."""
        if not isinstance(query, str):
            raise InvalidQuery(f"a query must be a string, got {type(query).__name__}")
        chosen = Filter.of(filters)
        params: list[tuple[str, Any]] = [("q", query), ("k", k), ("highlight", "true" if highlight else "false")]
        params += list(_options(mode, nprobe, ef_search, rerank, min_confidence).items())
        if chosen is not None:
            params += [("document", d) for d in chosen.documents] + [("title", t) for t in chosen.titles]
            params += [("source", s) for s in chosen.sources]
        return _result(self._request("GET", "/api/search?" + urllib.parse.urlencode(params)))

    def search_batch(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        mode: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        highlight: bool = True,
        rerank: bool | None = None,
        filters: Filter | Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """Many queries in one request (`/api/search/batch`, at most 64 each; longer lists are split)."""
        results = self.search_batch_with_status(
            queries,
            k,
            mode=mode,
            nprobe=nprobe,
            ef_search=ef_search,
            highlight=highlight,
            rerank=rerank,
            filters=filters,
        )
        return [result.hits for result in results]

    def search_batch_with_status(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        min_confidence: float | None = None,
        mode: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        highlight: bool = True,
        rerank: bool | None = None,
        filters: Filter | Mapping[str, Any] | None = None,
    ) -> list[SearchResult]:
        """`search_batch` with each query's `SearchResult`, as `Retriever.search_batch_with_status`."""
        if isinstance(queries, str):
            raise InvalidQuery("search_batch takes a list of queries; use search() for one")
        queries = list(queries)
        for query in queries:
            if not isinstance(query, str):
                raise InvalidQuery(f"a query must be a string, got {type(query).__name__}")
        chosen = Filter.of(filters)
        body: dict[str, Any] = {"k": k, "highlight": highlight}
        body.update(_options(mode, nprobe, ef_search, rerank, min_confidence))
        if chosen is not None:
            body["filters"] = chosen.to_dict()
        results: list[SearchResult] = []
        for lo in range(0, len(queries), _BATCH):
            answer = self._request("POST", "/api/search/batch", {**body, "queries": queries[lo : lo + _BATCH]})
            results += [_result(result) for result in answer["results"]]
        return results

    def get(self, passage_id: int) -> Hit:
        """The passage with this id, exactly as stored."""
        if isinstance(passage_id, bool) or not isinstance(passage_id, int) or passage_id < 0:
            raise PassageNotFound(f"no passage with id {passage_id!r} (ids are whole numbers from 0)")
        return _hit(self._request("GET", f"/api/passages/{passage_id}"))

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.load(response)
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRIED_STATUSES or attempt == self.retries:
                    raise _error(exc, method, self.url + path) from None
            except TimeoutError:
                raise ServerUnavailable(
                    f"{self.url} gave no answer within {self.timeout:g} s; raise the client's timeout, or check "
                    "the server"
                ) from None
            except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as exc:
                if attempt == self.retries:
                    reason = getattr(exc, "reason", exc)
                    raise ServerUnavailable(
                        f"cannot reach {self.url} ({reason}) after {attempt + 1} tries; is `groundsearch serve` "
                        "running there?"
                    ) from None
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


_BATCH = 64  # web.api.MAX_BATCH; not imported, so that this module needs nothing of the web app


def _options(
    mode: str | None, nprobe: int | None, ef_search: int | None, rerank: bool | None, min_confidence: float | None
) -> dict[str, Any]:
    given = {"mode": mode, "nprobe": nprobe, "ef_search": ef_search, "rerank": rerank, "min_confidence": min_confidence}
    return {name: value for name, value in given.items() if value is not None}


def _result(body: Mapping[str, Any]) -> SearchResult:
    """A `SearchResult` from one of the API's search responses."""
    hits = [_hit(h) for h in body["hits"]]
    return SearchResult(body["query"], hits, body.get("answerable"), body.get("confidence"), body.get("min_confidence"))


def _hit(body: Mapping[str, Any]) -> Hit:
    """A `Hit` from the API's JSON: every field the API sends that `Hit` has, so new fields come through."""
    values = {name: value for name, value in body.items() if name in _HIT_FIELDS}
    values["found_by"] = tuple(Found(**f) for f in body.get("found_by") or ())
    values["highlight"] = Span(**body["highlight"]) if body.get("highlight") else None
    values.setdefault("rank", 0)  # a passage fetched by id, as Retriever.get gives it
    values.setdefault("score", None)
    return Hit(**values)


def _error(exc: urllib.error.HTTPError, method: str, url: str) -> Exception:
    """The library's exception for an HTTP error answer, with the server's one-line message."""
    try:
        detail = json.load(exc).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        kind = first.get("type")
    else:
        message, kind = str(detail or exc.reason), None
    if exc.code == 404 and "/api/passages/" in url:
        return PassageNotFound(message)
    if exc.code == 422:
        if kind == "filter_matches_nothing":
            return FilterMatchesNothing(message)
        if "/api/passages/" in url:
            return PassageNotFound(message)
        return InvalidQuery(message)
    if exc.code >= 500:
        return ServerError(f"{method} {url} failed on the server (HTTP {exc.code}): {message}")
    return ServerError(f"{method} {url} was refused (HTTP {exc.code}): {message}")
