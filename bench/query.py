"""Query-time figures for issue 10: cold CLI start, single-query latency, batch throughput and serving, beside txtai.

    .venv/bin/python bench/query.py --work /tmp/gs-query          # a kept work dir makes reruns quick
    .venv/bin/python bench/query.py --questions 50 --limit 500     # a short run while developing

Corpus: SQuAD dev part A (one document per paragraph), built once with `groundsearch build` into --work; the
cold-CLI rows use the demo dump built the same way (or --demo-index). Measured, never asserted:
1. `groundsearch query DEMO "..." --json` in a new process (after one warm-up run for the page cache): median
   wall seconds and peak RSS, with the default (ONNX) encoder and with --encoder torch.
2. `Retriever.search(q, k=10, mode="dense")` p50/p99 over the first --questions questions, ONNX and torch
   encoders, and txtai's `Embeddings.search(q, 10)` over the same passage texts with the same model folder.
3. `Retriever.search_batch(all questions, k=20, mode="dense")` queries/s, with and without highlights, beside
   the encoder's own `encode` rate and txtai's `batchsearch`.
4. `groundsearch serve` on a free loopback port: seconds until /healthz answers, then /api/search latency with
   one sequential client and with 4 concurrent keep-alive clients.
txtai is optional (`pip install txtai`, not a project dependency); without it its rows say so.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from load import START_TIMEOUT_S, Client, free_port, percentile  # noqa: E402  (stdlib-only HTTP helpers)

SHARED = Path(os.environ.get("GROUNDSEARCH_SHARED_DATA") or ROOT / "tests" / "data")
DEMO_DUMP = ROOT / "data" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
CLI_QUERY = "who wrote the nicomachean ethics"
Row = tuple[str, str, str]  # measure, value, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=SHARED / "squad" / "squad-dev-v1.1-part-a.json")
    parser.add_argument("--work", type=Path, help="where the bundles are built, and reused (default: a temp dir)")
    parser.add_argument("--demo-index", type=Path, help="bundle for the cold-CLI rows (default: built from the demo)")
    parser.add_argument("--questions", type=int, default=300, help="single queries to time in process")
    parser.add_argument("--limit", type=int, help="questions for the batch rows (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="cold CLI runs per encoder, after one warm-up")
    parser.add_argument("--requests", type=int, default=200, help="HTTP requests per client")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if min(args.questions, args.runs, args.requests, args.limit or 1) < 1:
        parser.error("--questions, --limit, --runs and --requests must be at least 1")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        squad = ensure_bundle(args.squad, work / "squad.idx")
        demo = args.demo_index or ensure_bundle(DEMO_DUMP, work / "demo.idx")
        questions = squad_questions(args.squad)
        figures: dict[str, float] = {}
        rows = cold_cli(demo, args.runs, figures)
        rows += in_process(squad, work, questions, args.questions, args.limit, figures)
        rows += serving(squad, work, questions, args.requests, figures)
    print(machine())
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other processes count too)"
    print(f"corpus: {args.squad.name}, {len(questions):,} questions; {load}")
    rows.insert(0, ("measure", "value", "target"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    rows.insert(1, ("-" * widths[0], "-" * widths[1], "-" * widths[2]))
    for row in rows:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "figures": figures}, indent=2))


def machine() -> str:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, python {platform.python_version()}, "
        f"onnxruntime {version('onnxruntime')}, torch {version('torch')}, faiss {version('faiss-cpu')}, "
        f"txtai {version('txtai')}"
    )


def groundsearch(*args: str) -> list[str]:
    """The console script a user runs (so its start-up cost is measured too), else `python -m groundsearch`."""
    script = Path(sys.executable).parent / "groundsearch"
    return [str(script), *args] if script.is_file() else [sys.executable, "-m", "groundsearch", *args]


def ensure_bundle(corpus: Path, out: Path) -> Path:
    if not (out / "manifest.json").is_file():
        print(f"building {out} from {corpus.name} ...", file=sys.stderr)
        subprocess.run(groundsearch("build", str(corpus), "--out", str(out), "--quiet"), check=True)
    return out


def squad_questions(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [qa["question"] for article in data for p in article["paragraphs"] for qa in p["qas"]]


def run_measured(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process. os.wait4 returns that child's own rusage; RUSAGE_CHILDREN
    would give the largest peak of every child waited for so far, so a later, smaller run could not show."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: stderr cannot fill up while stdout is read
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        if proc.returncode != 0 or not json.loads(out)["hits"]:
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {errors.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024  # kilobytes on Linux


def cold_cli(demo: Path, runs: int, figures: dict[str, float]) -> list[Row]:
    print(f"cold CLI queries on {demo} ...", file=sys.stderr)
    rows = []
    for encoder in ("default", "torch"):
        extra = ["--encoder", "torch"] if encoder == "torch" else []  # default: auto, ONNX where the bundle has it
        command = groundsearch("query", str(demo), CLI_QUERY, "--json", *extra)
        run_measured(command)  # warm-up: a user's next query finds the files in the page cache
        measured = [run_measured(command) for _ in range(runs)]
        wall, rss = statistics.median(w for w, _ in measured), max(r for _, r in measured)
        figures[f"cli_{encoder}_seconds"], figures[f"cli_{encoder}_peak_rss_mb"] = wall, rss
        target = "<= 1.0 s, <= 250 MB" if encoder == "default" else ""
        rows.append((f"cold CLI query, {encoder} encoder: median, peak RSS", f"{wall:.2f} s, {rss:.0f} MB", target))
    return rows


def latencies(search: Callable[[str], Any], queries: Sequence[str]) -> tuple[list[float], list[Any]]:
    """Milliseconds per call, sorted, and each call's result; one warm-up call first (first-call costs)."""
    search(queries[0])
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(search(query))
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times), results


def rate(call: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    call()
    return count / (time.perf_counter() - started)


def open_txtai(bundle: Path, work: Path) -> Any | None:
    """txtai over the bundle's own passage texts (title, section, text as our index embeds them) and the same
    model folder, so both search the same vectors; saved in the work dir for reruns. None if not installed."""
    try:
        import txtai
    except ImportError:
        return None
    from retriever.bundle import STORE_NAME, embedding_text, read_manifest
    from retriever.model import resolve_model_dir
    from retriever.store import PassageStore

    manifest = read_manifest(bundle)
    embeddings = txtai.Embeddings(path=str(resolve_model_dir(manifest.model.name)), content=True)
    saved = work / "txtai"
    if saved.is_dir():
        embeddings.load(str(saved))
        return embeddings
    rows = PassageStore(bundle / STORE_NAME).iter_texts(0, manifest.passages)
    embeddings.index((str(i), embedding_text(t, s, x, manifest.text_template), None) for i, t, s, x in rows)
    embeddings.save(str(saved))
    return embeddings


def measure_ours(
    retriever: Any, encoder: str, single: list[str], batch: list[str], figures: dict[str, float]
) -> tuple[list[Row], list[str]]:
    """Rows for one query encoder, and its top-1 passage ids for the single queries."""
    ms, results = latencies(lambda q: retriever.search(q, k=10, mode="dense"), single)
    figures[f"search_{encoder}_p50_ms"], figures[f"search_{encoder}_p99_ms"] = p50, p99 = _p50_p99(ms)
    qps = rate(lambda: retriever.search_batch(batch, k=20, mode="dense"), len(batch))
    plain = rate(lambda: retriever.search_batch(batch, k=20, mode="dense", highlight=False), len(batch))
    encode = rate(lambda: retriever.encoder.encode(batch), len(batch))
    figures |= {f"batch_{encoder}_qps": qps, f"batch_{encoder}_plain_qps": plain, f"encode_{encoder}_qps": encode}
    rows: list[Row] = [
        (f"search(q, k=10, dense), {encoder}: p50 / p99", f"{p50:.1f} / {p99:.1f} ms", ""),
        (f"search_batch(k=20, dense), {encoder}", f"{qps:,.0f} q/s ({plain:,.0f} q/s without highlights)", ""),
        (
            f"  / encoder.encode(), {encoder}",
            f"{qps / encode:.2f} (encode {encode:,.0f} q/s)",
            ">= 0.85" if encoder == "onnx" else "",
        ),
    ]
    return rows, [str(hits[0].passage_id) for hits in results]


def in_process(
    bundle: Path, work: Path, questions: list[str], single: int, limit: int | None, figures: dict[str, float]
) -> list[Row]:
    from retriever import Retriever

    rows: list[Row] = []
    tops: dict[str, list[str]] = {}
    for encoder in ("onnx", "torch"):
        print(f"in-process queries, {encoder} encoder ...", file=sys.stderr)
        retriever = Retriever.open(bundle, encoder=encoder)
        encoder_rows, tops[encoder] = measure_ours(retriever, encoder, questions[:single], questions[:limit], figures)
        rows += encoder_rows
    batch = questions[:limit]
    print("txtai: indexing (once per work dir) and queries ...", file=sys.stderr)
    embeddings = open_txtai(bundle, work)
    if embeddings is None:
        return [*rows, ("txtai search / batchsearch", "txtai not installed", "")]
    ms, results = latencies(lambda q: embeddings.search(q, 10), questions[:single])
    figures["txtai_p50_ms"], figures["txtai_p99_ms"] = p50, p99 = _p50_p99(ms)
    agree = statistics.mean(r[0]["id"] == ours for r, ours in zip(results, tops["onnx"], strict=True))
    qps = rate(lambda: embeddings.batchsearch(batch, 20), len(batch))
    figures |= {"txtai_batch_qps": qps, "txtai_top1_agreement": agree}
    ratio, speedup = figures["search_onnx_p50_ms"] / p50, figures["batch_onnx_qps"] / qps
    figures |= {"search_p50_ours_over_txtai": ratio, "batch_ours_over_txtai": speedup}
    return [
        *rows,
        ("txtai search(q, 10): p50 / p99", f"{p50:.1f} / {p99:.1f} ms (top-1 same as ours: {agree:.0%})", ""),
        ("  ours (onnx) / txtai, p50", f"{ratio:.2f}x", "<= 0.5x"),
        ("txtai batchsearch(q, 20)", f"{qps:,.0f} q/s", ""),
        ("  ours (onnx) / txtai, q/s", f"{speedup:.2f}x", ">= 1.2x"),
    ]


def _p50_p99(sorted_ms: list[float]) -> tuple[float, float]:
    return percentile(sorted_ms, 50), percentile(sorted_ms, 99)


def search_path(query: str) -> str:
    return "/api/search?" + urllib.parse.urlencode({"q": query, "k": 10, "mode": "dense"})


def timed_get(client: Client, path: str) -> float:
    started = time.perf_counter()
    status, body = client.get(path)
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status} {body[:200]!r}")
    return (time.perf_counter() - started) * 1000


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Polls /healthz every 10 ms (load.start_server sleeps 0.3 s between tries: too coarse for this figure)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"groundsearch serve exited with {proc.returncode}:\n{log.read_text()}")
        client = Client(url)
        try:
            if client.get("/healthz")[0] == 200:
                client.close()
                return
        except (OSError, http.client.HTTPException):
            time.sleep(0.01)
    raise SystemExit(f"groundsearch serve did not answer /healthz in {START_TIMEOUT_S} s:\n{log.read_text()}")


def concurrent_latencies(url: str, questions: list[str], clients: int, requests: int) -> list[float]:
    """`clients` threads, each with its own keep-alive connection, each sending `requests` searches."""
    times: list[list[float]] = [[] for _ in range(clients)]
    problems: list[str] = []

    def client_loop(n: int) -> None:
        client = Client(url)
        try:
            for j in range(requests):
                times[n].append(timed_get(client, search_path(questions[(n * requests + j) % len(questions)])))
        except Exception as exc:  # reported after the join: an exception in a thread would be lost
            problems.append(repr(exc))
        client.close()

    threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if problems:
        raise SystemExit(f"{len(problems)} clients failed, first: {problems[0]}")
    return sorted(x for t in times for x in t)


def serving(bundle: Path, work: Path, questions: list[str], requests: int, figures: dict[str, float]) -> list[Row]:
    print("groundsearch serve ...", file=sys.stderr)
    url, log = f"http://127.0.0.1:{free_port()}", work / "serve.log"
    command = groundsearch("serve", str(bundle), "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1])
    with log.open("wb") as out:  # the access log, a line per request, goes to a file, not to our table
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, url, log)
        figures["serve_ready_seconds"] = ready = time.perf_counter() - started
        client = Client(url)
        timed_get(client, search_path(questions[0]))  # warm-up
        one = sorted(timed_get(client, search_path(q)) for q in questions[:requests])
        client.close()
        four = concurrent_latencies(url, questions, 4, requests)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    figures["serve_1_p50_ms"], figures["serve_1_p99_ms"] = p50, p99 = _p50_p99(one)
    figures["serve_4_p50_ms"], figures["serve_4_p99_ms"] = c50, c99 = _p50_p99(four)
    return [
        ("serve: start until /healthz answers", f"{ready:.2f} s", "<= 1.5 s"),
        (f"serve, 1 client x {len(one)}: p50 / p99", f"{p50:.1f} / {p99:.1f} ms", "p50 <= 8 ms"),
        (f"serve, 4 clients x {requests}: p50 / p99", f"{c50:.1f} / {c99:.1f} ms (p99/p50 {c99 / c50:.1f})", "<= 3"),
    ]


if __name__ == "__main__":
    main()
