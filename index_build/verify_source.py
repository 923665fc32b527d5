"""`groundsearch verify --source`: re-read the corpus files and check that every stored passage is exactly what
they give, with the bundle's own build options (format, base URL, passage length).

The corpus is read into a scratch store with the build's own read stage (index_build.read_stage), and the two
stores are compared row by row: every document's identity (source id, title, URL, revision, timestamp) and every
passage's article, section, position, offsets, text and hash. A source file that is not byte for byte the one
the index was built from is named too, so an edited dump shows as the file and the articles that changed.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from itertools import zip_longest
from pathlib import Path
from typing import Any

from index_build.read_stage import read_corpora
from index_build.readers import open_corpus
from retriever.bundle import STORE_NAME, Manifest, sha256_file
from retriever.integrity import VerifyReport

_DOCUMENT_FIELDS = ("source_id", "title", "url", "revision", "timestamp", "source")
_PASSAGE_FIELDS = ("document_id", "section", "ord", "start", '"end"', "text", "sha256")


def verify_sources(
    bundle: Path, manifest: Manifest, sources: list[str | os.PathLike[str]], report: VerifyReport
) -> None:
    """Add to `report` every way in which `sources` do not re-derive the bundle's store."""
    options = manifest.build_options
    corpora = [
        open_corpus(
            source, format=options.get("format"), base_url=options.get("base_url"), skip_errors=options["skip_errors"]
        )
        for source in sources
    ]
    recorded = {Path(s.path).name: s for s in manifest.sources}
    for corpus in corpora:
        name = Path(corpus.path).name
        report.count("source files")
        if name not in recorded:
            report.differ(f"{name}: not a source of this index ({', '.join(recorded) or 'none recorded'})")
        elif sha256_file(corpus.path) != recorded[name].sha256:
            report.differ(f"{name}: not the file the index was built from (sha256 differs); articles follow")
    with tempfile.TemporaryDirectory(prefix="groundsearch-verify-") as tmp:
        scratch = Path(tmp) / STORE_NAME
        read_corpora(corpora, scratch, int(options["passage_words"]), progress=False)
        _compare(bundle / STORE_NAME, scratch, report)


def _compare(stored: Path, derived: Path, report: VerifyReport) -> None:
    with closing(sqlite3.connect(f"file:{stored}?mode=ro&immutable=1", uri=True)) as conn:
        conn.execute("ATTACH DATABASE ? AS derived", (f"file:{derived}?mode=ro",))
        titles = dict(conn.execute("SELECT id, title FROM main.documents"))
        for kind, table, fields in (
            ("article", "documents", _DOCUMENT_FIELDS),
            ("passage", "passages", _PASSAGE_FIELDS),
        ):
            for ours, theirs in zip_longest(_rows(conn, "main", table, fields), _rows(conn, "derived", table, fields)):
                report.count(f"{kind}s re-derived")
                _differ_rows(kind, ours, theirs, fields, titles, report)


def _rows(conn: sqlite3.Connection, schema: str, table: str, fields: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    yield from conn.execute(f"SELECT id, {', '.join(fields)} FROM {schema}.{table} ORDER BY id")


def _differ_rows(
    kind: str,
    ours: tuple[Any, ...] | None,
    theirs: tuple[Any, ...] | None,
    fields: tuple[str, ...],
    titles: dict[int, str],
    report: VerifyReport,
) -> None:
    if ours is None:
        assert theirs is not None
        report.differ(f"{kind} {theirs[0]}: in the source but not in the index")
        return
    if theirs is None:
        report.differ(
            f"{kind} {ours[0]} ({_where(kind, ours, titles)}): in the index but not re-derived from the source"
        )
        return
    changed = [name.strip('"') for name, a, b in zip(fields, ours[1:], theirs[1:], strict=True) if a != b]
    if changed:
        report.differ(f"{kind} {ours[0]} ({_where(kind, ours, titles)}): {', '.join(changed)} differ from the source")


def _where(kind: str, row: tuple[Any, ...], titles: dict[int, str]) -> str:
    """The article a row belongs to, by title: what a reader of the report recognises."""
    title = row[2] if kind == "article" else titles.get(row[1], "?")
    return f"article {title!r}"
