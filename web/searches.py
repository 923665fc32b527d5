"""Where the server runs searches: one thread of their own, not FastAPI's thread pool.

A search already uses every core: the ONNX encoder runs one intra-op thread per core and FAISS one OpenMP thread
per core. Two searches at once only split the cores between them and stretch both, so running them one at a time
loses no throughput, and the encoder is always called from the same thread, whose caches stay warm. The routes
await the search (the event loop stays free for other requests, `/healthz` among them) and then validate and
serialise the response on the loop, without a second trip through a thread pool. Measured with bench/query.py's
serving rows on 2 cores, one run beside the plain-`def` routes in FastAPI's pool: one client p50 10.0 against 11.3
ms, p99 15-18 against 19-21 ms; four clients p99/p50 1.3-1.4 against 1.6-2.0 (README, Performance).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")
SEARCH_THREADS = 1


class SearchRunner:
    """Runs blocking search calls on the server's search thread, for `async` routes to await."""

    def __init__(self, threads: int = SEARCH_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="groundsearch-search")

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(call, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def searches(request: Request) -> SearchRunner:
    runner: SearchRunner = request.app.state.searches
    return runner
