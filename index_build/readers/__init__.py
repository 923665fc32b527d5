"""Corpus readers: every supported file format in, a stream of cleaned `Document`s out.

    corpus = open_corpus("enwiki-latest-pages-articles.xml.bz2")
    for document in corpus:
        ...
    print(corpus.stats)

`open_corpus` checks the file and settles its format at once, so a wrong path fails before any work starts;
reading happens lazily, one pass per iteration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from index_build.documents import CorpusError, Document
from index_build.readers.common import CorpusStats
from index_build.readers.detect import FORMATS, check_file, detect_format

__all__ = ["FORMATS", "Corpus", "CorpusStats", "detect_format", "open_corpus"]


class Corpus:
    """One corpus file: iterate it for its documents, in file order, the same on every pass.

    `stats` counts what the current (or last) pass yielded and skipped; it is replaced at the start of each
    pass and is final once the pass ends.
    """

    def __init__(
        self,
        path: Path,
        format: str,
        *,
        base_url: str | None = None,
        skip_errors: bool = False,
        workers: int = 1,
    ) -> None:
        self.path = path
        self.format = format
        self.base_url = base_url
        self.skip_errors = skip_errors
        self.workers = workers
        self.stats = CorpusStats()

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, format={self.format!r})"

    def __iter__(self) -> Iterator[Document]:
        return self.read()

    def read(self, after: CorpusStats | None = None) -> Iterator[Document]:
        """Iterate the documents, or with `after` (the `stats` of an earlier pass, taken when it yielded a
        document) only the documents after that one, with `stats` counting on from `after`.

        Readers count every record in file order as they yield, so `after.total` is the number of records
        up to that document: they are passed over without being cleaned, which is what makes resuming a
        killed read cheap (a MediaWiki dump is still parsed past them, but not cleaned).
        """
        stats = self.stats = replace(after) if after is not None else CorpusStats()
        yield from self._read(stats, stats.total)
        if stats.documents == 0:
            raise CorpusError(_nothing_found(self.path, self.format, stats))

    def _read(self, stats: CorpusStats, skip: int) -> Iterator[Document]:
        # Readers are imported here so that opening a Parquet corpus does not need mwxml, and the reverse.
        if self.format == "mediawiki":
            from index_build.readers.mediawiki import read_mediawiki

            return read_mediawiki(
                self.path,
                stats,
                base_url=self.base_url,
                skip_errors=self.skip_errors,
                workers=self.workers,
                skip=skip,
            )
        if self.format in ("jsonl", "beir"):
            from index_build.readers.jsonl import read_jsonl

            return read_jsonl(
                self.path,
                stats,
                flavour=self.format,
                base_url=self.base_url,
                skip_errors=self.skip_errors,
                skip=skip,
            )
        if self.format == "squad":
            from index_build.readers.squad import read_squad

            return read_squad(self.path, stats, base_url=self.base_url, skip_errors=self.skip_errors, skip=skip)
        from index_build.readers.parquet import read_parquet

        return read_parquet(self.path, stats, base_url=self.base_url, skip=skip)


def open_corpus(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    base_url: str | None = None,
    skip_errors: bool = False,
    workers: int | None = None,
) -> Corpus:
    """Open a corpus file, detecting its format from its content unless `format` names one of `FORMATS`.

    `base_url` is the article URL prefix (e.g. "https://en.wikipedia.org/wiki/") for records that carry no
    URL (a MediaWiki export's own siteinfo wins). `skip_errors` counts and skips bad records instead of
    raising. `workers` is the number of processes cleaning wikitext (default: one per CPU; 1 = no pool).
    Raises `CorpusError` for a missing, unreadable or unrecognised file.
    """
    path = Path(path)
    if format is not None:
        if format not in FORMATS:
            raise CorpusError(f"unknown corpus format {format!r}; the formats are {', '.join(FORMATS)}")
        check_file(path)
    else:
        format = detect_format(path)
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise CorpusError(f"workers must be at least 1, got {workers}")
    return Corpus(path, format, base_url=base_url, skip_errors=skip_errors, workers=workers)


def _nothing_found(path: Path, format: str, stats: CorpusStats) -> str:
    """The one-line message for a corpus that yielded no document, saying what was skipped instead."""
    if format == "mediawiki":
        return (
            f"no articles found in {path} after skipping {stats.redirects_skipped} redirects, "
            f"{stats.other_namespace_skipped} non-article pages, {stats.empty_skipped} empty pages "
            f"and {stats.errors_skipped} bad pages"
        )
    return (
        f"no documents found in {path} after skipping {stats.empty_skipped} empty records "
        f"and {stats.errors_skipped} bad records"
    )
