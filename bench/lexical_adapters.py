"""The two BM25 engines bench/lexical_engines.py compares, behind one interface: build, open, search."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from retriever.lexical import STOP_WORDS

# Lucene's English stop set (what tantivy's Filter.stopword("english") and Lucene/Pyserini use): 33 words.
LUCENE_STOP = frozenset(
    (
        "a an and are as at be but by for if in into is it no not of on or such that the their then there "
        "these they this to was will with"
    ).split()
)
# The Snowball English stop list (as in NLTK): the one groundsearch's own analyzer uses, so the bench measures it.
SNOWBALL_STOP = STOP_WORDS
STOPLISTS = {"lucene": LUCENE_STOP, "snowball": SNOWBALL_STOP}

MAX_QUERY_CHARS = 10_000  # user text beyond this is ignored
MAX_QUERY_TERMS = 64  # distinct terms kept, in order of first appearance

# Letters and digits (Unicode L* and N*), which is what FTS5's unicode61 keeps as token characters.
WORD_RE = re.compile(r"[^\W_]+")


def clean_user_text(text: str) -> str:
    """Bound the length and drop lone surrogates (JSON can carry them; neither SQLite nor Rust accepts them)."""
    text = text[:MAX_QUERY_CHARS]
    return text.encode("utf-8", "replace").decode("utf-8")


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
