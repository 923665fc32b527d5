"""Load check for `groundsearch serve`: many concurrent clients, and every answer must equal the lone client's.

Not a test (it takes minutes and its numbers depend on the machine): run it by hand or before a release.

    .venv/bin/python bench/load.py --index demo.idx --clients 1,4,16 --seconds 20
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --clients 8

It starts `groundsearch serve` on a free loopback port (or uses --url), fetches one answer per query with a
single client as the reference, then for each client count runs that many threads for a bounded time, each
with its own keep-alive connection, cycling through a fixed list of queries. Threads and http.client keep the
load generator in the standard library; the server runs in its own process, so the client threads compete with
it for CPU but not for its interpreter. Exits 1 if any request failed or any answer differed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUERIES = [
    "who wrote the nicomachean ethics",
    "what is the reflectivity of a surface called",
    "when was abraham lincoln assassinated",
    "hotel in Prince Edward Island",
    "Haitian politician and police chief",
    "royal governor seized the colony's gunpowder in 1775",
    "thermoplastic elastomer block copolymer",
    "British children's television series about a boy whose watch can stop time",
    "capital city of a country in Africa",
    "the theory of evolution by natural selection",
    "programming language designed for teaching",
    "a famous battle in the middle ages",
]
START_TIMEOUT_S = 300  # loading the model on a busy machine


@dataclass
class Tally:
    """What one client thread saw; merged after the run, so the threads share no counters."""

    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # of requests that got an HTTP response
    errors: int = 0
    mismatches: int = 0
    first_problem: str | None = None


def search_path(query: str, k: int) -> str:
    return "/api/search?" + urllib.parse.urlencode({"q": query, "k": k})


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure so one error does not end the client."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def reference_answers(url: str, k: int) -> dict[str, Any]:
    """The single-client answer to every query: what each answer under load must equal."""
    client = Client(url)
    answers = {}
    for query in QUERIES:
        status, body = client.get(search_path(query, k))
        if status != 200:
            raise SystemExit(f"reference request for {query!r} failed: HTTP {status} {body[:200]!r}")
        answers[query] = json.loads(body)
    client.close()
    return answers


def client_loop(url: str, k: int, offset: int, deadline: float, expected: dict[str, Any], tally: Tally) -> None:
    client = Client(url)
    i = offset  # clients start at different queries, so the server sees a mix at every moment
    while time.monotonic() < deadline:
        query = QUERIES[i % len(QUERIES)]
        i += 1
        tally.requests += 1
        started = time.perf_counter()
        try:
            status, body = client.get(search_path(query, k))
        except (OSError, http.client.HTTPException) as exc:
            tally.errors += 1
            tally.first_problem = tally.first_problem or f"{query!r}: {exc!r}"
            continue
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            tally.errors += 1
            tally.first_problem = tally.first_problem or f"{query!r}: HTTP {status} {body[:200]!r}"
        elif json.loads(body) != expected[query]:
            tally.mismatches += 1
            tally.first_problem = tally.first_problem or f"{query!r}: answer differs from the single-client one"
    client.close()


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually measured, no interpolation."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def run_level(url: str, clients: int, seconds: float, k: int, expected: dict[str, Any]) -> dict[str, Any]:
    tallies = [Tally() for _ in range(clients)]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client_loop, args=(url, k, n, deadline, expected, tallies[n]), daemon=True)
        for n in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started  # includes the last requests, which finish after the deadline
    latencies = sorted(x for t in tallies for x in t.latencies_ms)
    errors = sum(t.errors for t in tallies)
    return {
        "clients": clients,
        "requests": sum(t.requests for t in tallies),
        "rps": sum(t.requests for t in tallies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "errors": errors,
        "mismatches": sum(t.mismatches for t in tallies),
        "problem": next((t.first_problem for t in tallies if t.first_problem), None),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| clients | requests | requests/s | p50 ms | p99 ms | errors | mismatches |")
    print("|--------:|---------:|-----------:|-------:|-------:|-------:|-----------:|")
    for r in rows:
        print(
            f"| {r['clients']:>7} | {r['requests']:>8} | {r['rps']:>10.1f} | {r['p50']:>6.0f} | {r['p99']:>6.0f} "
            f"| {r['errors']:>6} | {r['mismatches']:>10} |"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(index: Path, log: Path, torch_threads: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`groundsearch serve` exactly as a user runs it, logging to a file; returns once /healthz answers."""
    env = dict(os.environ)
    if torch_threads is not None:
        # Read by torch at import: threads per forward pass. On a small or shared machine, intra-op threads
        # of concurrent requests compete for the same cores, which this option lets one measure.
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(torch_threads)
    port = free_port()
    command = [sys.executable, "-m", "groundsearch", "serve", str(index), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        # Its access log (a line per request, as a user's server writes it) goes to a file, not to our table.
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"groundsearch serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if Client(url).get("/healthz")[0] == 200:
                return proc, url
        except (OSError, http.client.HTTPException):
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"groundsearch serve did not answer /healthz in {START_TIMEOUT_S} s:\n{log.read_text()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--index", type=Path, help="index to serve on a free loopback port for the run")
    target.add_argument("--url", help="an already running server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts, one run each")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    parser.add_argument("--k", type=int, default=10, help="passages per search")
    parser.add_argument("--torch-threads", type=int, help="with --index: OMP_NUM_THREADS for the server")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    if not levels or min(levels) < 1 or args.seconds <= 0 or args.k < 1:
        parser.error("--clients must list counts >= 1, --seconds and --k must be positive")
    if args.torch_threads is not None and (args.index is None or args.torch_threads < 1):
        parser.error("--torch-threads needs --index and a count >= 1")

    proc = None
    rows: list[dict[str, Any]] = []
    log = Path(tempfile.gettempdir()) / f"groundsearch-load-{os.getpid()}.log"
    if args.index is not None:
        proc, url = start_server(args.index, log, args.torch_threads)
    else:
        url = args.url.rstrip("/")
    try:
        info = json.loads(Client(url).get("/api/info")[1])
        print(
            f"server {url}: index {info['index']} ({info['documents']:,} documents, {info['passages']:,} passages, "
            f"FAISS {info['faiss_factory']}); {len(QUERIES)} queries, k={args.k}, {args.seconds:g} s per run; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        expected = reference_answers(url, args.k)
        for clients in levels:
            rows.append(run_level(url, clients, args.seconds, args.k, expected))
        print_table(rows)
        print(f"load average after: {os.getloadavg()[0]:.1f} (other processes on this machine count too)")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    problems = [f"{r['clients']} clients: {r['problem']}" for r in rows if r["problem"]]
    for problem in problems:
        print("first problem at " + problem, file=sys.stderr)
    return 1 if any(r["errors"] or r["mismatches"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
