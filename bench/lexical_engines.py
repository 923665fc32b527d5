"""Choose the lexical (BM25) engine by measurement: SQLite FTS5 against tantivy (PyPI `tantivy`).

    .venv/bin/python bench/lexical_engines.py --passages 1000000 --workdir /tmp/lexbench --engines fts5,tantivy

What it does, for each engine:
1. builds a corpus of N passages of real text: sentences from the SQuAD paragraphs and the English Wikipedia
   dumps in tests/data/wiki (read and cleaned with `index_build.readers.open_corpus`), recombined at random
   (seeded, so the same seed gives the same corpus) into passages of about 100 words, each titled with a real
   title;
2. builds the lexical index (build seconds, passages/s, bytes on disk per passage), opens it read-only as query
   time would, and times 10-word queries (SQuAD questions truncated/padded to 10 words), single-threaded,
   top-20, after a warm-up; every query goes text -> tokens -> safe query (no query language is ever parsed);
3. SQuAD quality: the 1,023 paragraphs of squad-dev-v1.1-part-a as the corpus, all 5,397 questions, gold
   paragraph recall@1/5/20, for several title treatments and stop-word lists;
4. hostile queries (quotes, operators, column names, 10,000 characters, emoji, RTL text, lone surrogates...);
5. concurrency: one tantivy Searcher shared by several Python threads, one SQLite connection per thread;
   and a read-only open of both indexes as an unprivileged user (when run as root with setpriv available);
then prints one table. Timings are medians over `--repeats` passes, with the load average next to them, because
the machine may be shared. Nothing here asserts a timing.

Both engines use BM25 (k1=1.2, b=0.75, fixed in both), English stemming and the same stop-word list:
- tantivy: a registered analyzer simple -> remove_long(40) -> lowercase -> custom_stopword -> stemmer(english)
  (Snowball English stemmer), index_option "freq" (no positions: BM25 needs none);
- FTS5: a contentless table (content=''), tokenize 'porter unicode61 remove_diacritics 2' (Porter stemmer),
  stop words removed from the query in Python (they stay in the index).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lexical_adapters import ENGINES, FTS5, STOPLISTS, Config, Tantivy, dir_bytes  # noqa: E402
from lexical_corpus import load_sentences, load_squad, synthetic_passages, ten_word_queries  # noqa: E402
from lexical_measure import concurrency, hostile, loadavg, recall_eval, time_queries  # noqa: E402


def readonly_probe(engine_name: str, path: Path, cfg: Config) -> dict:
    """Open and query the index as user nobody (cannot write there), and check no file changed."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return {"skipped": "not root or no setpriv; cannot drop privileges"}

    def snapshot() -> dict:
        files = [path] if path.is_file() else sorted(path.rglob("*")) + [path]
        return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}

    before = snapshot()
    cmd = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        sys.executable,
        str(Path(__file__).resolve()),
        "--_probe",
        engine_name,
        str(path),
        json.dumps(cfg.to_dict()),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    after = snapshot()
    return {
        "rc": r.returncode,
        "out": (r.stdout.strip() or r.stderr.strip()[-300:]),
        "files_unchanged": before == after,
    }


def _probe_main(engine_name: str, path: str, cfg_json: str) -> None:
    cfg = Config(**json.loads(cfg_json))
    engine = ENGINES[engine_name](Path(path), cfg)
    ids = engine.search("Which NFL team won Super Bowl 50 in Santa Clara?", 5)
    print(json.dumps({"uid": os.getuid(), "hits": len(ids)}))


# ----------------------------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_probe":
        _probe_main(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lexbench"))
    ap.add_argument("--engines", default="fts5,tantivy")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--queries", type=int, default=500, help="10-word queries timed per pass")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="timing passes; the medians are reported")
    ap.add_argument(
        "--title-mode",
        choices=["none", "prepend", "field"],
        default="prepend",
        help="title treatment for the N-passage index",
    )
    ap.add_argument("--title-boost", type=float, default=2.0)
    ap.add_argument("--stopwords", choices=sorted(STOPLISTS), default="snowball")
    ap.add_argument("--fts5-detail", choices=["full", "column", "none"], default="full")
    ap.add_argument("--tantivy-heap", type=int, default=1_000_000_000)
    ap.add_argument("--reuse", action="store_true", help="reuse an index built by an earlier run with these args")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--threads", default="1,2,4", help="thread counts for the concurrency check")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()

    import resource

    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(args.workdir, 0o755)
    engines = [ENGINES[e] for e in args.engines.split(",")]
    cfg = Config(args.title_mode, args.title_boost, args.stopwords, args.fts5_detail)
    report: dict = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "sqlite_version": sqlite3.sqlite_version,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_at_start": loadavg(),
    }
    try:
        import importlib.metadata as md

        report["tantivy_version"] = md.version("tantivy")
    except Exception:  # noqa: BLE001
        report["tantivy_version"] = None
    print(f"sqlite {sqlite3.sqlite_version}, tantivy {report['tantivy_version']}, load {loadavg()}", flush=True)

    paragraphs, questions = load_squad()
    rows: dict[str, dict] = {e.name: {} for e in engines}

    if not args.skip_scale:
        t0 = time.perf_counter()
        sentences, titles = load_sentences(args.workdir)
        print(f"{len(sentences):,} sentences, {len(titles):,} titles ({time.perf_counter() - t0:.1f} s)", flush=True)
        t0 = time.perf_counter()
        words = chars = 0
        for _, title, text in synthetic_passages(args.passages, args.seed, sentences, titles):
            words += len(text.split())
            chars += len(text) + len(title)
        gen_s = time.perf_counter() - t0
        report["corpus"] = {
            "passages": args.passages,
            "sentences": len(sentences),
            "titles": len(titles),
            "mean_words": words / args.passages,
            "mean_chars": chars / args.passages,
            "generation_s": gen_s,
        }
        print(
            f"corpus: {args.passages:,} passages, {words / args.passages:.1f} words/passage, "
            f"generation alone {gen_s:.1f} s (included in build s below)",
            flush=True,
        )
        queries = ten_word_queries([q for q, _ in questions], args.queries + args.warmup, args.seed)
        warm, timed = queries[: args.warmup], queries[args.warmup :]
        report["query_words_mean"] = statistics.fmean(len(q.split()) for q in timed)
        report["query_examples"] = timed[:3]

        for e in engines:
            path = (
                args.workdir
                / f"scale-{args.passages}-{e.name}-{cfg.title_mode}-{cfg.stopwords}-{cfg.fts5_detail}{e.suffix}"
            )
            stats_file = path.with_name(path.name + ".build.json")
            if args.reuse and path.exists() and stats_file.exists():
                build = json.loads(stats_file.read_text())
                print(f"[{e.name}] reusing {path}", flush=True)
            else:
                print(f"[{e.name}] building {path} (load {loadavg()})", flush=True)
                t0 = time.perf_counter()
                docs = synthetic_passages(args.passages, args.seed, sentences, titles)
                if e is Tantivy:
                    detail = Tantivy.build(path, docs, cfg, heap=args.tantivy_heap)
                else:
                    detail = e.build(path, docs, cfg)
                build_s = time.perf_counter() - t0
                build = {
                    "build_s": build_s,
                    "detail": detail,
                    "bytes": dir_bytes(path),
                    "load_after": loadavg(),
                    "maxrss_mb_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
                stats_file.write_text(json.dumps(build))
            os.system(f"chmod -R a-w,a+rX {path}")  # as a shipped bundle would be
            build["bytes_per_passage"] = build["bytes"] / args.passages
            build["passages_per_s"] = args.passages / build["build_s"]
            print(
                f"[{e.name}] build {build['build_s']:.1f} s ({build['passages_per_s']:,.0f}/s) {build['detail']}, "
                f"{build['bytes'] / 2**20:,.1f} MiB = {build['bytes_per_passage']:.0f} B/passage",
                flush=True,
            )
            t0 = time.perf_counter()
            engine = e(path, cfg)
            build["open_ms"] = (time.perf_counter() - t0) * 1000
            timing = time_queries(engine, timed, warm, args.repeats)
            m = timing["median"]
            print(
                f"[{e.name}] query p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms, {m['qps']:.0f} q/s "
                f"(passes: {[(round(p['p50_ms'], 2), p['load_before']) for p in timing['passes']]})",
                flush=True,
            )
            conc = concurrency(e, engine, timed[:300], [int(x) for x in args.threads.split(",")])
            print(f"[{e.name}] concurrency {conc}", flush=True)
            ro = readonly_probe(e.name, path, cfg)
            print(f"[{e.name}] read-only open as nobody: {ro}", flush=True)
            rows[e.name].update(build=build, timing=timing, concurrency=conc, readonly=ro, config=cfg.label(e.name))
            del engine

    if not args.skip_quality:
        qdir = args.workdir / "squad"
        qdir.mkdir(exist_ok=True)
        variants = [
            Config("none", 1.0, "snowball"),
            Config("prepend", 1.0, "snowball"),
            Config("field", 1.0, "snowball"),
            Config("field", 2.0, "snowball"),
            Config("field", 3.0, "snowball"),
            Config("prepend", 1.0, "lucene"),
            Config("field", 2.0, "lucene"),
        ]
        for e in engines:
            vs = variants + ([Config("prepend", 1.0, "snowball", "column")] if e is FTS5 else [])
            results = []
            for v in vs:
                r = recall_eval(e, qdir, v)
                results.append({"variant": v.label(e.name), **r})
                print(
                    f"[{e.name}] SQuAD {v.label(e.name):40s} r@1 {r['r@1']:.3f} r@5 {r['r@5']:.3f} "
                    f"r@20 {r['r@20']:.3f}",
                    flush=True,
                )
            rows[e.name]["quality"] = results
            # hostile probes on the SQuAD index of the scale config
            probe_cfg = Config(cfg.title_mode, cfg.title_boost, cfg.stopwords)
            path = (
                qdir / f"squad-{e.name}-{probe_cfg.title_mode}-{probe_cfg.title_boost:g}"
                f"-{probe_cfg.stopwords}-full{e.suffix}"
            )
            if not path.exists():
                recall_eval(e, qdir, probe_cfg)
            rows[e.name]["hostile"] = hostile(e(path, probe_cfg))

    report["engines"] = rows
    report["load_at_end"] = loadavg()

    # ------------------------------------------------------------------ the table
    print()
    print(
        f"N = {args.passages:,} passages; queries: {args.queries} x {args.repeats} passes, "
        f"{report.get('query_words_mean', 0):.1f} words, top-20, single thread; medians over passes; "
        f"load avg start {report['load_at_start']} end {report['load_at_end']}"
    )
    head = [
        "engine",
        "config (scale)",
        "build s",
        "passages/s",
        "bytes/passage",
        "p50 ms",
        "p99 ms",
        "q/s",
        "R@1",
        "R@5",
        "R@20 (SQuAD, same config)",
    ]
    lines = [head]
    for name, r in rows.items():
        b, t = r.get("build", {}), r.get("timing", {}).get("median", {})
        q = next((x for x in r.get("quality", []) if x["variant"] == cfg.label(name)), None)
        lines.append(
            [
                name,
                cfg.label(name),
                f"{b['build_s']:.0f}" if b else "-",
                f"{b['passages_per_s']:,.0f}" if b else "-",
                f"{b['bytes_per_passage']:.0f}" if b else "-",
                f"{t['p50_ms']:.2f}" if t else "-",
                f"{t['p99_ms']:.2f}" if t else "-",
                f"{t['qps']:.0f}" if t else "-",
                *([f"{q[k]:.3f}" for k in ("r@1", "r@5", "r@20")] if q else ["-", "-", "-"]),
            ]
        )
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    for row in lines:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    for name, r in rows.items():
        if "quality" in r:
            print(f"\nSQuAD gold-paragraph recall, {name}:")
            for x in r["quality"]:
                print(f"  {x['variant']:42s} {x['r@1']:.3f} / {x['r@5']:.3f} / {x['r@20']:.3f}")
        if "hostile" in r:
            print(f"\nhostile queries, {name} (safe path | raw user text into the engine's own query language):")
            for x in r["hostile"]:
                print(f"  {x['probe']:22s} {x['safe'][:80]:80s} | {x['raw']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
