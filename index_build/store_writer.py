"""Write documents and their passages into the SQLite store (schema from retriever.store)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from index_build.documents import Document
from index_build.passages import split_document
from retriever.store import SCHEMA

_BATCH = 2000


@dataclass
class StoreCounts:
    documents: int = 0
    passages: int = 0


def write_store(path: Path, documents: Iterable[tuple[str, Document]], passage_words: int) -> StoreCounts:
    """Fill a new store from (source name, document) pairs; ids are assigned in the order given.

    Documents with no words are skipped: a passage must have text to be found.
    """
    db = sqlite_utils.Database(path, recreate=True)
    # The file is renamed into place only when complete, so a crash loses nothing: skip the journal.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.executescript(SCHEMA)
    counts = StoreCounts()
    doc_rows: list[dict[str, Any]] = []
    passage_rows: list[dict[str, Any]] = []

    def flush() -> None:
        db.table("documents").insert_all(doc_rows, batch_size=_BATCH)
        db.table("passages").insert_all(passage_rows, batch_size=_BATCH)
        doc_rows.clear()
        passage_rows.clear()

    for source, document in documents:
        rows = list(_passage_rows(document, counts.documents, counts.passages, passage_words))
        if not rows:
            continue
        doc_rows.append(
            {
                "id": counts.documents,
                "source_id": document.source_id,
                "title": document.title,
                "url": document.url,
                "revision": document.revision,
                "timestamp": document.timestamp,
                "source": source,
            }
        )
        passage_rows.extend(rows)
        counts.documents += 1
        counts.passages += len(rows)
        if len(passage_rows) >= _BATCH:
            flush()
    flush()
    db.conn.commit()
    db.close()
    return counts


def _passage_rows(document: Document, document_id: int, first_id: int, words: int) -> Iterator[dict[str, Any]]:
    for offset, span in enumerate(split_document(document, words)):
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
