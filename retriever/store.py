"""The passage store: SQLite, opened read-only at query time, one connection per thread.

`index_build` creates the tables from `SCHEMA` so the layout is written down once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from retriever.errors import IndexCorrupt

SCHEMA = """
CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT,
    revision TEXT,
    timestamp TEXT,
    source TEXT NOT NULL
);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY,          -- the FAISS id
    document_id INTEGER NOT NULL REFERENCES documents(id),
    section TEXT NOT NULL,
    ord INTEGER NOT NULL,            -- position of the passage within its document
    start INTEGER NOT NULL,          -- character offsets into the document's cleaned text
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX passages_document ON passages(document_id, ord);
"""

_SELECT = """
SELECT p.id, p.text, p.section, p.ord, p.start, p."end", p.sha256,
       d.id, d.source_id, d.title, d.url, d.revision, d.timestamp
FROM passages p JOIN documents d ON d.id = p.document_id
WHERE p.id IN ({marks})
"""


@dataclass(frozen=True)
class StoredPassage:
    passage_id: int
    text: str
    section: str
    order: int
    start: int
    end: int
    sha256: str
    document_id: int
    source_id: str
    title: str
    url: str | None
    revision: str | None
    timestamp: str | None


class PassageStore:
    """Read-only access to the passages table; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connect()  # fail at open time, not at the first search

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=True)
                conn.execute("SELECT 1 FROM passages LIMIT 1").fetchall()
            except sqlite3.DatabaseError as exc:
                raise IndexCorrupt(f"{self.path}: unreadable passage store ({exc}); rebuild the index") from exc
            self._local.conn = conn
        return conn

    def fetch(self, passage_ids: Sequence[int]) -> dict[int, StoredPassage]:
        """Fetch many passages in one indexed query; ids that do not exist are simply absent."""
        ids = list(dict.fromkeys(int(i) for i in passage_ids))
        found: dict[int, StoredPassage] = {}
        conn = self._connect()
        # SQLite caps the number of bound parameters; 500 stays far below every build's limit.
        for lo in range(0, len(ids), 500):
            chunk = ids[lo : lo + 500]
            rows = conn.execute(_SELECT.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
            for row in rows:
                found[row[0]] = StoredPassage(*row)
        return found

    def count(self, table: str = "passages") -> int:
        if table not in ("passages", "documents"):
            raise ValueError(table)
        return int(self._connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def iter_texts(self, first: int, last: int) -> Iterable[tuple[int, str, str, str]]:
        """(passage id, title, section, text) for ids in [first, last), in id order."""
        return self._connect().execute(
            "SELECT p.id, d.title, p.section, p.text FROM passages p JOIN documents d ON d.id = p.document_id "
            "WHERE p.id >= ? AND p.id < ? ORDER BY p.id",
            (first, last),
        )
