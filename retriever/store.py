"""The passage store: SQLite, opened read-only at query time, one connection per thread.

`index_build` creates the tables from `SCHEMA` so the layout is written down once.
"""

from __future__ import annotations

import json
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
    source TEXT NOT NULL,
    kind TEXT                        -- NULL for an article; "disambiguation" or "list" for a navigation page
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

# {kind} is d.kind, or NULL for a store built before navigation pages were flagged (it has no such column).
_SELECT = """
SELECT p.id, p.text, p.section, p.ord, p.start, p."end", p.sha256,
       d.id, d.source_id, d.title, d.url, d.revision, d.timestamp, {kind}
FROM passages p JOIN documents d ON d.id = p.document_id
WHERE p.id IN ({marks})
"""

_AROUND = """
WITH here AS (SELECT document_id, ord FROM passages WHERE id = :id)
SELECT p.id, p.text, p.section, p.ord, p.start, p."end", p.sha256,
       d.id, d.source_id, d.title, d.url, d.revision, d.timestamp, {kind}
FROM here JOIN passages p ON p.document_id = here.document_id
     AND p.ord BETWEEN here.ord - :before AND here.ord + :after
JOIN documents d ON d.id = p.document_id
ORDER BY p.ord
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
    kind: str | None  # "disambiguation" or "list" for a navigation page (retriever.Hit.page_kind)


class PassageStore:
    """Read-only access to the passages table; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        conn = self._connect()  # fail at open time, not at the first search
        columns = {row[1] for row in conn.execute("PRAGMA table_info(documents)")}
        self._kind = "d.kind" if "kind" in columns else "NULL"

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
            rows = conn.execute(_SELECT.format(marks=",".join("?" * len(chunk)), kind=self._kind), chunk).fetchall()
            for row in rows:
                found[row[0]] = StoredPassage(*row)
        return found

    def around(self, passage_id: int, before: int, after: int) -> list[StoredPassage]:
        """The passages of `passage_id`'s document from `before` places ahead of it to `after` past it, in
        document order; empty when no passage has that id. One query, on the (document_id, ord) index."""
        args = {"id": int(passage_id), "before": before, "after": after}
        rows = self._connect().execute(_AROUND.format(kind=self._kind), args).fetchall()
        return [StoredPassage(*row) for row in rows]

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

    def iter_contents(self) -> Iterable[tuple[int, str, str, str, str]]:
        """(document id, source id, title, section, passage sha256) of every passage, in passage id order (so a
        document's passages come together, in their order): what comparing two bundles needs, no text."""
        return self._connect().execute(
            "SELECT d.id, d.source_id, d.title, p.section, p.sha256 FROM passages p "
            "JOIN documents d ON d.id = p.document_id ORDER BY p.id"
        )

    def document_runs(
        self, documents: Sequence[int] = (), titles: Sequence[str] = (), sources: Sequence[str] = ()
    ) -> list[tuple[int, int]]:
        """Half-open passage id ranges of the documents matching every non-empty argument (any value of each).

        One range per document: the build gives a document's passages consecutive ids. A document whose ids are
        not consecutive (no build writes one) gets a range per passage, so the answer is right regardless.
        """
        where: list[str] = []
        args: list[object] = []
        for column, values in (("d.id", documents), ("d.title", titles), ("d.source", sources)):
            if values:
                # One JSON parameter, not one per value: no limit on how many values a filter names.
                where.append(f"{column} IN (SELECT value FROM json_each(?))")
                args.append(json.dumps(list(values)))
        conn = self._connect()
        rows = conn.execute(
            "SELECT d.id, min(p.id), max(p.id), count(*) FROM documents d JOIN passages p ON p.document_id = d.id "
            f"WHERE {' AND '.join(where) or '1'} GROUP BY d.id",
            args,
        ).fetchall()
        runs: list[tuple[int, int]] = []
        for document_id, first, last, count in rows:
            if last - first + 1 == count:
                runs.append((first, last + 1))
            else:
                ids = conn.execute("SELECT id FROM passages WHERE document_id = ?", (document_id,)).fetchall()
                runs.extend((pid, pid + 1) for (pid,) in ids)
        return runs
