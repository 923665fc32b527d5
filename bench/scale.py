"""Scale benchmark: N synthetic passages (default 10 M) through the project's own FAISS, store and tuning code.

    python bench/scale.py --n 1000000 --work /tmp/scale-1m --json scale-1m.json
    python bench/scale.py --n 10000000 --work /tmp/scale-10m --max-nlist 4096 --json scale-10m.json

Not part of `make test`. No model embeds the corpus (that would take days on a CPU): vectors come from
bench/synthetic.Mixture, clustered and shaped like real MiniLM embeddings, written as float32 .npy shards;
text is 5 random SQuAD sentences per passage. Stages and what they use:

- vectors: Mixture.shards, streamed to disk shard by shard (memory: one shard);
- store: the project's SQLite schema (retriever.store.SCHEMA), bulk-inserted with sqlite3 executemany (the
  project's write_store splits documents into passages; here the passages are made already);
- index: index_build.budget.choose_for_budget for --memory-budget, then index_build.faiss_index.build_faiss
  over the shards (CPU), then write_faiss;
- recall: index_build.tuning.tune_search with held-out queries from the same mixture (not corpus members):
  exact top-10 by brute force streamed over the shards, and the smallest nprobe reaching --target;
- open: retriever.faiss_io.read_faiss (memory-mapped) + PassageStore, timed, with the RSS growth;
- latency: one query at a time, FAISS search at the tuned nprobe + store fetch of k=10; the model's
  single-query encode time is measured apart on real questions (a row of its own).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthetic import Mixture, real_vectors, sentences, squad_questions  # noqa: E402

DIMENSION = 384
SENTENCES_PER_PASSAGE = 5
PASSAGES_PER_DOCUMENT = 10


def faiss_file(work: Path, factory: str) -> Path:
    """Where scale.py keeps the index for `factory` in its work folder (read by scale_bundle and scale_rescore)."""
    return work / f"index-{factory.replace(',', '_')}.faiss"


def rss_mb() -> dict[str, float]:
    status = Path("/proc/self/status").read_text()
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, required=True, help="folder for shards, store and index (kept)")
    parser.add_argument("--memory-budget", default="4GB")
    parser.add_argument("--max-nlist", type=int, default=None, help="cap the IVF list count (build cost ~ nlist)")
    parser.add_argument("--factory", default=None, help="use this factory instead of the budget's choice")
    parser.add_argument("--shard-size", type=int, default=250_000)
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries for recall and latency")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--serve-only",
        type=int,
        metavar="NPROBE",
        help="only open the built index in a fresh process and time queries at this nprobe, mmap then plain read",
    )
    args = parser.parse_args()
    if args.serve_only:
        serve_only(args)
        return

    import faiss

    from index_build.budget import MAX_NLIST, BudgetError, choose_for_budget, format_size, parse_size
    from index_build.faiss_index import build_faiss, write_faiss
    from index_build.tuning import tune_search
    from retriever.faiss_io import read_faiss
    from retriever.store import SCHEMA, PassageStore

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    figures: dict[str, Any] = {"n": args.n, "threads": faiss.omp_get_max_threads()}

    def row(name: str, value: str, **numbers: Any) -> None:
        rows.append((name, value))
        figures.update(numbers)
        print(f"  {name}: {value}", flush=True)

    # The shape of the data: real MiniLM vectors; and the query encoder's cost, measured on real questions.
    from retriever.model import DEFAULT_MODEL, Encoder

    real = real_vectors(work / "real-squad.npy")
    encoder = Encoder(DEFAULT_MODEL, device="cpu")
    questions = squad_questions()[:100]
    encoder.encode(questions[:5])
    times = []
    for q in questions:
        began = time.perf_counter()
        encoder.encode([q])
        times.append((time.perf_counter() - began) * 1000)
    row(
        "query encode (model, 1 query)",
        f"p50 {statistics.median(times):.1f} ms, p99 {p99(times):.1f} ms",
        encode_p50_ms=statistics.median(times),
        encode_p99_ms=p99(times),
    )
    del encoder
    gc.collect()
    mixture = Mixture(real)

    # Vectors.
    shard_dir = work / "shards"
    shard_dir.mkdir(exist_ok=True)
    shards: list[Path] = []
    began = time.perf_counter()
    made = 0
    for i, first in enumerate(range(0, args.n, args.shard_size)):
        path = shard_dir / f"shard-{i:05d}.npy"
        count = min(args.shard_size, args.n - first)
        if not path.exists() or np.load(path, mmap_mode="r").shape[0] != count:
            np.save(path, mixture.sample(count, 1_000_003 + i))
            made += count
        shards.append(path)
    took = time.perf_counter() - began
    row(
        "vectors generated (float32 .npy)",
        f"{made:,} in {took:.1f} s" + (f" = {made / took:,.0f}/s" if made else " (kept)"),
        vectors_s=took,
    )

    # Store.
    store_path = work / "passages.sqlite"
    began = time.perf_counter()
    if not store_path.exists():
        write_synthetic_store(store_path, args.n, SCHEMA)
        took = time.perf_counter() - began
        row("store written (SQLite)", f"{args.n:,} passages in {took:.1f} s = {args.n / took:,.0f}/s", store_s=took)
    row("store size", f"{format_size(store_path.stat().st_size)}", store_bytes=store_path.stat().st_size)

    # Index.
    budget = parse_size(args.memory_budget)
    max_nlist = args.max_nlist or MAX_NLIST
    choice = choose_for_budget(args.n, DIMENSION, budget, max_nlist)
    row(f"budget {args.memory_budget}: choice at {args.n:,}", choice.why, choice=choice.record())
    try:
        at_21m = choose_for_budget(21_000_000, DIMENSION, budget)
        row(f"budget {args.memory_budget}: choice at 21,000,000", at_21m.why, choice_21m=at_21m.record())
    except BudgetError as exc:
        row(f"budget {args.memory_budget}: choice at 21,000,000", str(exc))
    factory = args.factory or choice.factory
    faiss_path = faiss_file(work, factory)
    if not faiss_path.exists():
        began = time.perf_counter()
        index = build_faiss(shards, DIMENSION, factory, gpus=[])
        took = time.perf_counter() - began
        row(
            f"FAISS build {factory} (train + add)", f"{took:.1f} s = {args.n / took:,.0f} vectors/s", faiss_build_s=took
        )
        write_faiss(index, faiss_path)
        del index
        gc.collect()
    size = faiss_path.stat().st_size
    row(
        "index file",
        f"{format_size(size)} = {size / args.n:.1f} bytes/passage (estimate {format_size(choice.expected_bytes)})",
        index_bytes=size,
        index_estimate_bytes=choice.expected_bytes,
        factory=factory,
    )

    # Open, memory-mapped, as Retriever.open does (FAISS + store).
    before = rss_mb()
    began = time.perf_counter()
    index = read_faiss(faiss_path)
    store = PassageStore(store_path)
    open_s = time.perf_counter() - began
    after = rss_mb()
    row(
        "open (read_faiss mmap + store)",
        f"{open_s * 1000:.0f} ms, RSS +{after['VmRSS'] - before['VmRSS']:.0f} MB (file {format_size(size)})",
        open_s=open_s,
        open_rss_growth_mb=after["VmRSS"] - before["VmRSS"],
    )

    # Recall against exact search, and the nprobe that reaches the target.
    queries = mixture.sample(args.queries, seed=7)
    tuning = tune_search(index, shards, args.target, query_vectors=queries, source="held-out mixture draws")
    if tuning is None:
        row("ANN recall@10 vs exact", "1.000 (exact index)", recall=1.0)
        params = None
    else:
        tried = ", ".join(f"{v}: {r:.3f}" for v, r in tuning.tried)
        row(
            "ANN recall@10 vs exact",
            f"{tuning.recall:.3f} at {tuning.param}={tuning.value} ({tuning.seconds:.0f} s "
            f"incl. brute-force truth; tried {tried})",
            recall=tuning.recall,
            params=tuning.search_params(),
            tried=tuning.tried,
            tuning_s=tuning.seconds,
        )
        params = faiss.SearchParametersIVF(nprobe=tuning.value) if tuning.param == "nprobe" else None  # type: ignore[call-arg]

    # Latency: single queries, dense search + store fetch.
    dense, total = [], []
    for q in queries:
        began = time.perf_counter()
        _, ids = index.search(q[None, :], 10, params=params)
        searched = time.perf_counter()
        store.fetch([int(i) for i in ids[0] if i >= 0])
        done = time.perf_counter()
        dense.append((searched - began) * 1000)
        total.append((done - began) * 1000)
    row(
        "latency FAISS search (1 query, k=10)",
        f"p50 {statistics.median(dense):.2f} ms, p99 {p99(dense):.2f} ms",
        search_p50_ms=statistics.median(dense),
        search_p99_ms=p99(dense),
    )
    row(
        "latency search + store fetch",
        f"p50 {statistics.median(total):.2f} ms, p99 {p99(total):.2f} ms",
        query_p50_ms=statistics.median(total),
        query_p99_ms=p99(total),
    )
    now = rss_mb()
    row(
        "RSS after the queries",
        f"{now['VmRSS']:.0f} MB (anonymous {now['RssAnon']:.0f}, file-backed {now['RssFile']:.0f})",
        rss_after_queries_mb=now,
    )

    machine = f"{platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}, no GPU"
    print(f"\nscale: {args.n:,} synthetic passages   machine: {machine}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")
    if args.json:
        figures["machine"] = machine
        args.json.write_text(json.dumps(figures, indent=2, default=str))


def serve_only(args: argparse.Namespace) -> None:
    """What serving costs, free of the build's and the tuning's memory: a fresh process opens the index (memory-
    mapped, then read whole for comparison) and the store, and answers --queries single queries."""
    import faiss

    from index_build.budget import format_size
    from retriever.faiss_io import read_faiss
    from retriever.store import PassageStore

    (faiss_path,) = sorted(args.work.glob("index-*.faiss"))
    queries = Mixture(real_vectors(args.work / "real-squad.npy")).sample(args.queries, seed=7)
    params = faiss.SearchParametersIVF(nprobe=args.serve_only)  # type: ignore[call-arg]
    figures: dict[str, Any] = {"file_bytes": faiss_path.stat().st_size, "nprobe": args.serve_only}
    for mmap in (True, False):
        gc.collect()
        before = rss_mb()
        began = time.perf_counter()
        index = read_faiss(faiss_path, mmap=mmap)
        store = PassageStore(args.work / "passages.sqlite")
        opened = time.perf_counter() - began
        after_open = rss_mb()
        total = []
        for q in queries:
            began = time.perf_counter()
            _, ids = index.search(q[None, :], 10, params=params)
            store.fetch([int(i) for i in ids[0] if i >= 0])
            total.append((time.perf_counter() - began) * 1000)
        after = rss_mb()
        kind = "mmap" if mmap else "plain read"
        figures[kind] = {
            "open_s": opened,
            "rss_growth_open_mb": after_open["VmRSS"] - before["VmRSS"],
            "rss_after_queries_mb": after,
            "query_p50_ms": statistics.median(total),
            "query_p99_ms": p99(total),
        }
        print(
            f"| {kind}: open | {opened * 1000:,.0f} ms, RSS +{after_open['VmRSS'] - before['VmRSS']:,.0f} MB "
            f"(file {format_size(faiss_path.stat().st_size)}) |\n"
            f"| {kind}: {len(queries)} queries, search + fetch | p50 {statistics.median(total):.2f} ms, "
            f"p99 {p99(total):.2f} ms; then RSS {after['VmRSS']:,.0f} MB (anonymous {after['RssAnon']:,.0f}, "
            f"file-backed {after['RssFile']:,.0f}) |",
            flush=True,
        )
        del index, store
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def write_synthetic_store(path: Path, n: int, schema: str) -> None:
    """n passages of SENTENCES_PER_PASSAGE random SQuAD sentences, PASSAGES_PER_DOCUMENT per document."""
    pool = sentences()
    texts = [s for _, s in pool]
    titles = [t for t, _ in pool]
    rng = np.random.default_rng(3)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.executescript(schema)
    block = 100_000
    for first in range(0, n, block):
        count = min(block, n - first)
        picks = rng.integers(0, len(texts), (count, SENTENCES_PER_PASSAGE))
        passages, documents = [], []
        for offset, row in enumerate(picks):
            pid = first + offset
            doc, order = divmod(pid, PASSAGES_PER_DOCUMENT)
            text = " ".join(texts[j] for j in row)
            if order == 0:
                title = f"{titles[row[0]]} {doc}"
                documents.append((doc, f"synthetic-{doc}", title, None, None, None, "synthetic"))
            sha = hashlib.sha256(text.encode()).hexdigest()
            passages.append((pid, doc, "", order, 0, len(text), text, sha))
        conn.executemany("INSERT INTO documents VALUES (?,?,?,?,?,?,?)", documents)
        conn.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?,?,?)", passages)
    conn.commit()
    conn.close()
    os.replace(tmp, path)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


if __name__ == "__main__":
    main()
