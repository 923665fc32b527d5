"""Measurements for bench/lexical_engines.py: query timing, threads, SQuAD recall, hostile queries."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

from lexical_adapters import FTS5, Config
from lexical_corpus import load_squad


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def time_queries(engine, queries: list[str], warmup: list[str], repeats: int) -> dict:
    for q in warmup:
        engine.search(q, 20)
    passes = []
    for _ in range(repeats):
        lat = []
        la0 = loadavg()
        t0 = time.perf_counter()
        for q in queries:
            s = time.perf_counter()
            engine.search(q, 20)
            lat.append((time.perf_counter() - s) * 1000)
        total = time.perf_counter() - t0
        lat.sort()
        passes.append(
            {
                "p50_ms": statistics.median(lat),
                "p99_ms": lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)],
                "mean_ms": statistics.fmean(lat),
                "max_ms": lat[-1],
                "qps": len(queries) / total,
                "load_before": la0,
                "load_after": loadavg(),
            }
        )
    med = {k: statistics.median(p[k] for p in passes) for k in ("p50_ms", "p99_ms", "mean_ms", "max_ms", "qps")}
    return {"median": med, "passes": passes}


def concurrency(engine_cls, engine, queries: list[str], threads_list: list[int]) -> dict:
    """Aggregate q/s with T threads sharing one tantivy Searcher / each with its own SQLite connection."""
    expected = [engine.search(q, 20) for q in queries]
    out = {}
    if engine_cls is FTS5:
        shared = engine.conn
        err: list[str] = []

        def misuse() -> None:
            try:
                engine.search(queries[0], 20, conn=shared)
                err.append("no error")
            except Exception as e:  # noqa: BLE001
                err.append(f"{type(e).__name__}: {e}")

        t = threading.Thread(target=misuse)
        t.start()
        t.join()
        out["shared_connection_from_other_thread"] = err[0]
    for n in threads_list:
        mismatches = [0]
        barrier = threading.Barrier(n + 1)

        def work(i: int, n: int = n, barrier: threading.Barrier = barrier, mismatches: list[int] = mismatches) -> None:
            conn = engine.connect() if engine_cls is FTS5 else None
            barrier.wait()
            for j in range(i, len(queries), n):  # the threads split the query list
                if engine.search(queries[j], 20, conn=conn) != expected[j]:
                    mismatches[0] += 1

        ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in ts:
            t.join()
        dt = time.perf_counter() - t0
        out[f"threads={n}"] = {"qps": len(queries) / dt, "mismatches": mismatches[0], "load": loadavg()}
    return out


def recall_eval(engine_cls, workdir: Path, cfg: Config) -> dict:
    paragraphs, questions = load_squad()
    path = (
        workdir / f"squad-{engine_cls.name}-{cfg.title_mode}-{cfg.title_boost:g}-{cfg.stopwords}"
        f"-{cfg.fts5_detail}{engine_cls.suffix}"
    )
    docs = ((i, title, text) for i, (title, text) in enumerate(paragraphs, start=1))
    engine_cls.build(path, docs, cfg)
    engine = engine_cls(path, cfg)
    hits = {1: 0, 5: 0, 20: 0}
    for question, gold in questions:
        ids = engine.search(question, 20)
        for k in hits:
            if gold + 1 in ids[:k]:
                hits[k] += 1
    return {f"r@{k}": v / len(questions) for k, v in hits.items()} | {"questions": len(questions)}


HOSTILE = [
    ('"', '"'),
    ("AND", "AND"),
    ("*", "*"),
    ("NEAR(", "NEAR("),
    ("-", "-"),
    ("title:foo", "title:foo"),
    ("(a OR b", "(a OR b"),
    ("body:Denver", "body:Denver"),
    ('NEAR("super" "bowl", 2)', 'NEAR("super" "bowl", 2)'),
    ("super* bowl^3 -denver", "super* bowl^3 -denver"),
    ("10k chars, one token", "x" * 10_000),
    ("10k chars of words", ("which team won super bowl fifty in denver " * 300)[:10_000]),
    ("emoji", "🏈🏆 super bowl 🎉"),
    ("Hebrew (RTL)", "\u200fמי ניצח בסופרבול\u200f"),
    ("Arabic (RTL)", "من فاز بالسوبر بول"),
    ("empty", ""),
    ("NUL", "super\x00bowl"),
    ("lone surrogate", "super \ud800 bowl"),
]


def hostile(engine) -> list[dict]:
    rows = []
    for label, text in HOSTILE:
        row = {"probe": label}
        try:
            ids = engine.search(text, 20)
            q = engine.describe_query(text)
            row["safe"] = f"{len(ids)} hits; query {q[:48]!r}{'...' if len(q) > 48 else ''}"
        except Exception as e:  # noqa: BLE001 - this is the finding
            row["safe"] = f"RAISED {type(e).__name__}: {e}"
        row["raw"] = engine.raw(text)
        rows.append(row)
    return rows
