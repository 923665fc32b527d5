"""Choose the lexical (BM25) engine by measurement: SQLite FTS5 against tantivy (PyPI `tantivy`).

    .venv/bin/python bench/lexical_engines.py --passages 1000000 --workdir /tmp/lexbench --engines fts5,tantivy

What it does, for each engine:
1. builds a corpus of N passages of real text: sentences from the SQuAD paragraphs and the English Wikipedia
   dumps in ../shared/data/wiki (read and cleaned with `index_build.readers.open_corpus`), recombined at random
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
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
SQUAD = SHARED / "squad" / "squad-dev-v1.1-part-a.json"
WIKI = SHARED / "wiki"

# Lucene's English stop set (what tantivy's Filter.stopword("english") and Lucene/Pyserini use): 33 words.
LUCENE_STOP = frozenset(
    (
        "a an and are as at be but by for if in into is it no not of on or such that the their then there "
        "these they this to was will with"
    ).split()
)
# The Snowball English stop list (as in NLTK), contractions given as the pieces a word tokenizer leaves.
SNOWBALL_STOP = frozenset(
    (
        "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her "
        "hers herself it its itself they them their theirs themselves what which who whom this that these "
        "those am is are was were be been being have has had having do does did doing a an the and but if or "
        "because as until while of at by for with about against between into through during before after "
        "above below to from up down in out on off over under again further then once here there when where "
        "why how all any both each few more most other some such no nor not only own same so than too very s "
        "t can will just don should now d ll m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma "
        "mightn mustn needn shan shouldn wasn weren won wouldn"
    ).split()
)
STOPLISTS = {"lucene": LUCENE_STOP, "snowball": SNOWBALL_STOP}

MAX_QUERY_CHARS = 10_000  # user text beyond this is ignored
MAX_QUERY_TERMS = 64  # distinct terms kept, in order of first appearance

# Letters and digits (Unicode L* and N*), which is what FTS5's unicode61 keeps as token characters.
WORD_RE = re.compile(r"[^\W_]+")


def clean_user_text(text: str) -> str:
    """Bound the length and drop lone surrogates (JSON can carry them; neither SQLite nor Rust accepts them)."""
    text = text[:MAX_QUERY_CHARS]
    return text.encode("utf-8", "replace").decode("utf-8")


# ----------------------------------------------------------------------------------------------- corpus


def split_sentences(text: str) -> list[str]:
    out = []
    for para in text.split("\n"):
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])", para.strip()):
            n = len(s.split())
            if 4 <= n <= 80:
                out.append(s)
    return out


def load_squad() -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
    """(title, paragraph) for every paragraph; (question, paragraph index) for every question."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))
    paragraphs: list[tuple[str, str]] = []
    questions: list[tuple[str, int]] = []
    for article in data["data"]:
        title = article["title"].replace("_", " ")
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                questions.append((qa["question"], len(paragraphs)))
            paragraphs.append((title, p["context"]))
    return paragraphs, questions


def load_sentences(workdir: Path) -> tuple[list[str], list[str]]:
    """Sentences and titles of real text, cached in workdir (the readers are the slow part)."""
    cache = workdir / "sentences.json"
    if cache.exists():
        d = json.loads(cache.read_text(encoding="utf-8"))
        return d["sentences"], d["titles"]
    from index_build.readers import open_corpus

    sentences: list[str] = []
    titles: list[str] = []
    paragraphs, _ = load_squad()
    for _title, text in paragraphs:
        sentences.extend(split_sentences(text))
    titles.extend(sorted({t for t, _ in paragraphs}))
    for path in sorted(WIKI.iterdir()):
        if path.name.startswith("bgwiki"):  # Bulgarian: not English text
            continue
        for doc in open_corpus(path, workers=2):
            titles.append(doc.title)
            sentences.extend(split_sentences(doc.text))
    seen: set[str] = set()
    sentences = [s for s in sentences if not (s in seen or seen.add(s))]
    titles = sorted(set(titles))
    cache.write_text(json.dumps({"sentences": sentences, "titles": titles}), encoding="utf-8")
    return sentences, titles


def synthetic_passages(n: int, seed: int, sentences: list[str], titles: list[str]) -> Iterator[tuple[int, str, str]]:
    """(id, title, text) for ids 1..n: random sentences appended until ~100 words. Same seed, same passages."""
    rng = random.Random(seed)
    lengths = [len(s.split()) for s in sentences]
    ns, nt = len(sentences), len(titles)
    for pid in range(1, n + 1):
        picked: list[str] = []
        words = 0
        while words < 90 and len(picked) < 8:
            i = rng.randrange(ns)
            picked.append(sentences[i])
            words += lengths[i]
        yield pid, titles[rng.randrange(nt)], " ".join(picked)


def ten_word_queries(questions: list[str], count: int, seed: int) -> list[str]:
    """SQuAD questions truncated, or padded with the next question's words, to exactly 10 words."""
    rng = random.Random(seed)
    order = list(range(len(questions)))
    rng.shuffle(order)
    out = []
    for j in range(count):
        words = questions[order[j % len(order)]].split()
        k = j + 1
        while len(words) < 10:
            words += questions[order[k % len(order)]].split()
            k += 1
        out.append(" ".join(words[:10]))
    return out


# ----------------------------------------------------------------------------------------------- engines


class Config:
    def __init__(
        self,
        title_mode: str = "prepend",
        title_boost: float = 2.0,
        stopwords: str = "snowball",
        fts5_detail: str = "full",
    ) -> None:
        self.title_mode = title_mode  # none | prepend | field
        self.title_boost = title_boost
        self.stopwords = stopwords
        self.fts5_detail = fts5_detail

    def label(self, engine: str) -> str:
        t = f"field x{self.title_boost:g}" if self.title_mode == "field" else self.title_mode
        extra = f", detail={self.fts5_detail}" if engine == "fts5" and self.fts5_detail != "full" else ""
        return f"title {t}, stop {self.stopwords}{extra}"

    def to_dict(self) -> dict:
        return dict(vars(self))


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class FTS5:
    name = "fts5"
    suffix = ".sqlite"

    # --- build (writes; not what query time does)
    @staticmethod
    def build(path: Path, docs: Iterator[tuple[int, str, str]], cfg: Config) -> dict:
        if path.exists():
            path.chmod(0o644)
            path.unlink()
        conn = sqlite3.connect(path, isolation_level=None)  # autocommit: explicit BEGIN/COMMIT below
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
        tok = "tokenize='porter unicode61 remove_diacritics 2'"
        detail = f", detail={cfg.fts5_detail}" if cfg.fts5_detail != "full" else ""
        cols = "title, body" if cfg.title_mode == "field" else "body"
        conn.execute(f"CREATE VIRTUAL TABLE lex USING fts5({cols}, content='', {tok}{detail})")
        if cfg.title_mode == "field":
            conn.execute("INSERT INTO lex(lex, rank) VALUES('rank', ?)", (f"bm25({cfg.title_boost}, 1.0)",))
            rows: Iterator[tuple] = ((pid, title, text) for pid, title, text in docs)
            sql = "INSERT INTO lex(rowid, title, body) VALUES (?, ?, ?)"
        elif cfg.title_mode == "prepend":
            rows = ((pid, f"{title}\n{text}") for pid, title, text in docs)
            sql = "INSERT INTO lex(rowid, body) VALUES (?, ?)"
        else:
            rows = ((pid, text) for pid, _, text in docs)
            sql = "INSERT INTO lex(rowid, body) VALUES (?, ?)"
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        t1 = time.perf_counter()
        conn.execute("INSERT INTO lex(lex) VALUES('optimize')")  # one b-tree per term: smaller, faster queries
        t2 = time.perf_counter()
        conn.execute("VACUUM")  # return the pages of the merged-away segments
        t3 = time.perf_counter()
        conn.close()
        return {"insert_s": t1 - t0, "optimize_s": t2 - t1, "vacuum_s": t3 - t2}

    # --- query time
    def __init__(self, path: Path, cfg: Config) -> None:
        self.path = path
        self.cfg = cfg
        self.stop = STOPLISTS[cfg.stopwords]
        self.conn = self.connect()

    def connect(self) -> sqlite3.Connection:
        # Read-only; one connection per thread (a Connection refuses use from another thread).
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        conn.execute("PRAGMA query_only=1")
        return conn

    def match_expression(self, text: str) -> str:
        """User text -> an FTS5 MATCH string that cannot be a syntax error: every term a quoted string, ORed."""
        terms: dict[str, None] = {}
        for word in WORD_RE.findall(clean_user_text(text).lower()):
            if word not in self.stop:
                terms.setdefault(word)
                if len(terms) == MAX_QUERY_TERMS:
                    break
        return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)

    def search(self, text: str, k: int = 20, conn: sqlite3.Connection | None = None) -> list[int]:
        expr = self.match_expression(text)
        if not expr:
            return []
        rows = (
            (conn or self.conn)
            .execute("SELECT rowid FROM lex WHERE lex MATCH ? ORDER BY rank LIMIT ?", (expr, k))
            .fetchall()
        )
        return [r[0] for r in rows]

    def describe_query(self, text: str) -> str:
        return self.match_expression(text)

    def raw(self, text: str) -> str:
        """What the unsafe path (user text straight into MATCH) does, for contrast."""
        try:
            n = len(self.conn.execute("SELECT rowid FROM lex WHERE lex MATCH ? LIMIT 20", (text,)).fetchall())
            return f"{n} hits"
        except Exception as e:  # noqa: BLE001 - reporting only
            return f"{type(e).__name__}: {str(e)[:60]}"


class Tantivy:
    name = "tantivy"
    suffix = ".tantivy"

    @staticmethod
    def analyzer(cfg: Config):
        import tantivy

        return (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.custom_stopword(sorted(STOPLISTS[cfg.stopwords])))
            .filter(tantivy.Filter.stemmer("english"))
            .build()
        )

    @staticmethod
    def schema(cfg: Config):
        import tantivy

        sb = tantivy.SchemaBuilder()
        sb.add_integer_field("id", fast=True)  # the passage id, read back through the fast field
        if cfg.title_mode == "field":
            sb.add_text_field("title", tokenizer_name="en_bm25", index_option="freq")
        sb.add_text_field("body", tokenizer_name="en_bm25", index_option="freq")
        return sb.build()

    @staticmethod
    def build(
        path: Path, docs: Iterator[tuple[int, str, str]], cfg: Config, heap: int = 1_000_000_000, threads: int = 2
    ) -> dict:
        import tantivy

        if path.exists():
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
            shutil.rmtree(path)
        path.mkdir(parents=True)
        index = tantivy.Index(Tantivy.schema(cfg), path=str(path))
        index.register_tokenizer("en_bm25", Tantivy.analyzer(cfg))
        t0 = time.perf_counter()
        writer = index.writer(heap_size=heap, num_threads=threads)
        Document = tantivy.Document
        add = writer.add_document
        if cfg.title_mode == "field":
            for pid, title, text in docs:
                add(Document(id=pid, title=title, body=text))
        elif cfg.title_mode == "prepend":
            for pid, title, text in docs:
                add(Document(id=pid, body=f"{title}\n{text}"))
        else:
            for pid, _, text in docs:
                add(Document(id=pid, body=text))
        t1 = time.perf_counter()
        writer.commit()
        writer.wait_merging_threads()
        t2 = time.perf_counter()
        index.reload()
        segments = index.searcher().num_segments
        return {"add_s": t1 - t0, "commit_merge_s": t2 - t1, "segments": segments}

    def __init__(self, path: Path, cfg: Config) -> None:
        import tantivy

        self.t = tantivy
        self.cfg = cfg
        self.index = tantivy.Index.open(str(path))
        self.index.config_reader(reload_policy="manual")  # an immutable bundle: no watcher thread
        self.analyzer = Tantivy.analyzer(cfg)
        self.index.register_tokenizer("en_bm25", self.analyzer)  # not persisted: register at every open
        self.schema = self.index.schema
        self.searcher = self.index.searcher()  # shareable across threads
        self.fields = [("body", 1.0)] + ([("title", cfg.title_boost)] if cfg.title_mode == "field" else [])

    def terms(self, text: str) -> list[str]:
        terms = dict.fromkeys(self.analyzer.analyze(clean_user_text(text)))
        return list(terms)[:MAX_QUERY_TERMS]

    def build_query(self, text: str):
        """User text -> a Query built from analysed terms (no query parser involved), or None."""
        Q, Occur = self.t.Query, self.t.Occur
        clauses = []
        for term in self.terms(text):
            for field, boost in self.fields:
                q = Q.term_query(self.schema, field, term, index_option="freq")
                clauses.append((Occur.Should, q if boost == 1.0 else Q.boost_query(q, boost)))
        return Q.boolean_query(clauses) if clauses else None

    def search(self, text: str, k: int = 20, conn: object = None) -> list[int]:
        query = self.build_query(text)
        if query is None:
            return []
        hits = self.searcher.search(query, k, count=False).hits  # count=False keeps block-max WAND pruning
        if not hits:
            return []
        return self.searcher.fast_field_values("id", [address for _, address in hits])

    def describe_query(self, text: str) -> str:
        return " ".join(self.terms(text))

    def raw(self, text: str) -> str:
        try:
            q = self.index.parse_query(text, ["body"])
            return f"{len(self.searcher.search(q, 20, count=False).hits)} hits"
        except Exception as e:  # noqa: BLE001 - reporting only
            return f"{type(e).__name__}: {str(e)[:60]}"


ENGINES = {"fts5": FTS5, "tantivy": Tantivy}


# ----------------------------------------------------------------------------------------------- measurements


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
