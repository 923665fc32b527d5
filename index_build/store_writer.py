"""Write documents and their passages into the SQLite store (schema from retriever.store), resumably.

The file is written in place with periodic checkpoints rather than in one go, because at Wikipedia scale the
read that fills it (parsing and cleaning the whole dump) is the longest stage of a CPU build after embedding:
a build killed in it resumes after its last checkpoint (index_build.read_stage).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlite_utils

from index_build.documents import CorpusError, Document
from index_build.faults import stage_io
from index_build.passages import PassageSpan, split_document
from retriever.store import SCHEMA

_BATCH = 2000  # rows per INSERT statement
# Passages between checkpoints: each one commits what was read and where the reader stood, so a killed read
# loses at most this many. At 100 words a passage that is a few seconds of cleaning, and about 2,000
# checkpoints for English Wikipedia.
CHECKPOINT_PASSAGES = 10_000
PROGRESS_TABLE = "build_progress"
_PROGRESS_SCHEMA = f"""
CREATE TABLE {PROGRESS_TABLE} (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    documents INTEGER NOT NULL,
    passages INTEGER NOT NULL,
    merged INTEGER NOT NULL DEFAULT 0,  -- short pieces joined to a neighbour (index_build.passages)
    position TEXT NOT NULL,          -- the caller's JSON: where its reader stood after the last document
    complete INTEGER NOT NULL        -- 1 once every document is in; finish_store then drops the table
);
INSERT INTO {PROGRESS_TABLE} (id, documents, passages, position, complete) VALUES (0, 0, 0, 'null', 0);
"""


@dataclass
class StoreCounts:
    documents: int = 0
    passages: int = 0
    merged: int = 0  # short pieces the splitter joined to a neighbour: what the build reports as "merged"


@dataclass(frozen=True)
class Checkpoint:
    """What an unfinished store file holds: its counts and the position its writer's caller recorded with
    them (None before the first checkpoint). `complete` marks a file written to the end, not yet finished
    by `finish_store`."""

    counts: StoreCounts
    position: Any = None
    complete: bool = False


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The state of a store file a killed build left, or None when there is nothing to resume from.

    The progress table is created in the same transaction as the schema, so a file without it is no
    resumable store (or one `finish_store` already finished, which the caller knows from its own state).
    Rows beyond the last checkpoint (written after it, before the kill) are deleted here.
    """
    if not path.exists():
        return None
    try:
        db = sqlite_utils.Database(path)
        try:
            tables = set(db.table_names())
            if "passages" not in tables or PROGRESS_TABLE not in tables:
                return None
            with db.conn:
                if "merged" not in db[PROGRESS_TABLE].columns_dict:  # a file from before merges were counted
                    db.execute(f"ALTER TABLE {PROGRESS_TABLE} ADD COLUMN merged INTEGER NOT NULL DEFAULT 0")
            documents, passages, merged, position, complete = db.execute(
                f"SELECT documents, passages, merged, position, complete FROM {PROGRESS_TABLE}"
            ).fetchone()
            with db.conn:
                db.execute("DELETE FROM passages WHERE id >= ?", [passages])
                db.execute("DELETE FROM documents WHERE id >= ?", [documents])
            return Checkpoint(StoreCounts(documents, passages, merged), json.loads(position), bool(complete))
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None  # damaged (a disk that filled up, a crash of the machine): start the read over


def finish_store(path: Path) -> None:
    """Drop the progress table of a completely written store: what is left is the store retriever reads."""
    with stage_io("store", path):
        db = sqlite_utils.Database(path)
        try:
            with db.conn:
                db.execute(f"DROP TABLE IF EXISTS {PROGRESS_TABLE}")
        finally:
            db.close()


def write_store(
    path: Path,
    documents: Iterable[tuple[str, Document]],
    passage_words: int,
    position: Callable[[], Any] = lambda: None,
    resume: Checkpoint | None = None,
    checkpoint_passages: int = CHECKPOINT_PASSAGES,
) -> StoreCounts:
    """Fill a store from (source name, document) pairs, ids assigned in the order given; return its counts.

    Documents with no words are skipped: a passage must have text to be found. Every `checkpoint_passages`
    passages the rows are committed together with `position()` (called right after the last document was
    taken, so it can describe where the documents' reader stands); `read_checkpoint` gives it back after a
    kill, and `resume` continues that file: the caller then gives only the documents after that position.
    The file is complete when this returns; `finish_store` turns it into a plain store. A write that fails
    (disk full...) is a `BuildIOError`; the file then holds the last checkpoint, which a rerun resumes from.
    A document that is not valid Unicode is a `CorpusError`, raised before any of its rows is written.
    """
    with stage_io("reading", path):
        db = sqlite_utils.Database(path, recreate=resume is None)
        # A rollback journal without syncing: a killed process (not a crashed machine) leaves the file as of its
        # last commit, and appends journal little, since new pages have no old content to save.
        db.execute("PRAGMA synchronous = OFF")
        if resume is None:
            db.conn.executescript(f"BEGIN; {SCHEMA} {_PROGRESS_SCHEMA} COMMIT;")
    counts = replace(resume.counts) if resume is not None else StoreCounts()
    doc_rows: list[dict[str, Any]] = []
    passage_rows: list[dict[str, Any]] = []

    def checkpoint(complete: bool = False) -> None:
        # insert_all commits per batch; the progress row is written last, so rows past it are only ever
        # ahead of it, and read_checkpoint deletes them.
        with stage_io("reading", path):
            db.table("documents").insert_all(doc_rows, batch_size=_BATCH)
            db.table("passages").insert_all(passage_rows, batch_size=_BATCH)
            with db.conn:
                db.execute(
                    f"UPDATE {PROGRESS_TABLE} SET documents = ?, passages = ?, merged = ?, position = ?, complete = ?",
                    [counts.documents, counts.passages, counts.merged, json.dumps(position()), int(complete)],
                )
        doc_rows.clear()
        passage_rows.clear()

    for source, document in documents:
        problem = document.unicode_problem()
        if problem is not None:  # readers skip such records under --skip-errors; this one got through
            raise CorpusError(f"{source}: article {document.title!r} {problem}; SQLite cannot store it")
        spans = split_document(document, passage_words)
        if not spans:
            continue
        rows = list(_passage_rows(document, spans, counts.documents, counts.passages))
        doc_rows.append(
            {
                "id": counts.documents,
                "source_id": document.source_id,
                "title": document.title,
                "url": document.url,
                "revision": document.revision,
                "timestamp": document.timestamp,
                "source": source,
                "kind": document.kind,
            }
        )
        passage_rows.extend(rows)
        counts.documents += 1
        counts.passages += len(rows)
        counts.merged += sum(span.pieces - 1 for span in spans)
        if len(passage_rows) >= checkpoint_passages:
            checkpoint()
    checkpoint(complete=True)
    with stage_io("reading", path):
        db.close()
    return counts


def _passage_rows(
    document: Document, spans: list[PassageSpan], document_id: int, first_id: int
) -> Iterator[dict[str, Any]]:
    for offset, span in enumerate(spans):
        text = document.text[span.start : span.end]
        yield {
            "id": first_id + offset,
            "document_id": document_id,
            "section": span.section,
            "ord": span.order,
            "start": span.start,
            "end": span.end,
            "text": text,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
