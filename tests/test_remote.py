"""RemoteRetriever against a real `groundsearch serve` on a loopback port: the same hits as the library, the
library's exceptions for the server's refusals, retries when no server answers, a timeout when one never does."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CORPUS_QUESTIONS

from retriever import (
    MODES,
    FilterMatchesNothing,
    InvalidQuery,
    PassageNotFound,
    RemoteRetriever,
    Retriever,
    ServerUnavailable,
)
from web.api import MAX_BATCH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(small_index: Path) -> Iterator[str]:
    """One real server for the module, as a user starts it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "groundsearch", "serve", str(small_index), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the server did not answer within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def local(small_index: Path) -> Retriever:
    return Retriever.open(small_index)


@pytest.fixture(scope="module")
def remote(server: str) -> RemoteRetriever:
    return RemoteRetriever(server, timeout=30)


@pytest.mark.parametrize("mode", MODES)
def test_remote_answers_equal_local_answers(local: Retriever, remote: RemoteRetriever, mode: str) -> None:
    # Equal Hits: every field, scores to the last bit (JSON carries a float's shortest exact repr).
    assert remote.search_batch(CORPUS_QUESTIONS, k=5, mode=mode) == local.search_batch(CORPUS_QUESTIONS, k=5, mode=mode)
    question = CORPUS_QUESTIONS[0]
    assert remote.search(question, k=3, mode=mode) == local.search(question, k=3, mode=mode)
    assert remote.search(question, k=3, mode=mode, highlight=False) == local.search(
        question, k=3, mode=mode, highlight=False
    )
    filters = {"title": ["Gunpowder Incident", "Hotel Charlottetown"], "document": [1, 10, 11]}
    assert remote.search(question, k=4, mode=mode, filters=filters) == local.search(
        question, k=4, mode=mode, filters=filters
    )
    # Whether anything matches well, and each hit's confidence, come through too.
    for query, bar in ((question, None), ("xyzzyqwv", None), (question, 0.99)):
        assert remote.search_with_status(query, k=3, mode=mode, min_confidence=bar) == local.search_with_status(
            query, k=3, mode=mode, min_confidence=bar
        )
    assert remote.search_batch_with_status(CORPUS_QUESTIONS, k=2, mode=mode) == local.search_batch_with_status(
        CORPUS_QUESTIONS, k=2, mode=mode
    )


def test_get_info_and_long_batches(local: Retriever, remote: RemoteRetriever) -> None:
    assert remote.get(5) == local.get(5)
    assert (len(remote), remote.modes, remote.default_mode) == (len(local), local.modes, local.default_mode)
    assert remote.search_batch([]) == []
    # More queries than one request may hold: the client splits them.
    queries = [f"{CORPUS_QUESTIONS[i % len(CORPUS_QUESTIONS)]} {i}" for i in range(MAX_BATCH + 3)]
    rows = remote.search_batch(queries, k=1, mode="lexical", highlight=False)
    assert rows == local.search_batch(queries, k=1, mode="lexical", highlight=False)


def test_refusals_are_the_librarys_exceptions(remote: RemoteRetriever, server: str) -> None:
    with pytest.raises(InvalidQuery, match="empty query"):
        remote.search("   ")
    with pytest.raises(InvalidQuery, match="^k: "):
        remote.search("hotel", k=0)
    with pytest.raises(InvalidQuery, match="^mode: "):
        remote.search("hotel", mode="fuzzy")
    with pytest.raises(InvalidQuery, match="list of queries"):
        remote.search_batch("hotel")
    with pytest.raises(PassageNotFound, match="no passage with id 1000000"):
        remote.get(10**6)
    with pytest.raises(PassageNotFound):
        remote.get(-1)
    with pytest.raises(FilterMatchesNothing, match="title 'No such article'"):
        remote.search("hotel", filters={"title": "No such article"})
    with pytest.raises(FilterMatchesNothing):
        remote.search_batch(["hotel"], filters={"titles": ["No such article"]})
    # The batch endpoint refuses more than MAX_BATCH queries itself.
    request = urllib.request.Request(
        f"{server}/api/search/batch",
        data=json.dumps({"queries": ["hotel"] * (MAX_BATCH + 1)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 422


def test_no_server_is_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("retriever.remote.time.sleep", waits.append)
    client = RemoteRetriever(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.5)
    with pytest.raises(ServerUnavailable, match="cannot reach .* after 3 tries"):
        client.search("hotel")
    assert waits == [0.5, 1.0]
    with pytest.raises(InvalidQuery, match="not a server URL"):
        RemoteRetriever("127.0.0.1:8000")


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # listening, never accepting: connections open, no answer ever comes
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = RemoteRetriever(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3, retries=3)
        began = time.monotonic()
        with pytest.raises(ServerUnavailable, match="no answer within 0.3 s"):
            client.get(1)
        assert time.monotonic() - began < 3  # not retried: a slow server gets no second request


def test_an_adapter_over_the_remote_client(local: Retriever, server: str) -> None:
    from retriever.integrations.langchain import GroundsearchRetriever

    docs = GroundsearchRetriever.from_url(server, k=3, mode="dense").invoke(CORPUS_QUESTIONS[0])
    hits = local.search(CORPUS_QUESTIONS[0], k=3, mode="dense")
    assert [(d.id, d.page_content, d.metadata["score"]) for d in docs] == [
        (str(h.passage_id), h.text, h.score) for h in hits
    ]


def test_gateway_errors_are_retried_and_server_errors_are_not(
    local: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in server: 503 twice, then the passage (as a proxy before a restarting server); or always 500."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from retriever import ServerError
    from web.models import Passage

    body = Passage.from_hit(local.get(5)).model_dump_json().encode()
    answers = iter([503, 503, 200])
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            status = next(answers) if self.path == "/api/passages/5" else 500
            payload = body if status == 200 else json.dumps({"detail": f"failed with {status}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    monkeypatch.setattr("retriever.remote.time.sleep", lambda seconds: None)
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=stand_in.serve_forever, daemon=True)
    thread.start()
    try:
        client = RemoteRetriever(f"http://127.0.0.1:{stand_in.server_address[1]}", retries=2)
        assert client.get(5) == local.get(5) and len(seen) == 3
        with pytest.raises(ServerError, match="HTTP 500.*failed with 500"):
            client.get(6)
        assert len(seen) == 4
    finally:
        stand_in.shutdown()
        stand_in.server_close()
