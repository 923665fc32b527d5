"""MediaWiki XML exports (`.xml`, `.xml.bz2`; schema 0.10 and 0.11; any encoding) to cleaned articles.

The XML is streamed in this process with mwxml; only namespace-0 pages that are not redirects are cleaned,
and cleaning (the slow part, ~1 ms per KB of wikitext) runs in a process pool, a few pages per task, with a
bounded number of tasks in flight so memory stays flat on a 20 GB dump. Results are taken in submission order,
so the output is the same for any number of workers. `workers=1` cleans in this process with no pool.

Errors: a stream that breaks off (a truncated `.bz2`, malformed XML) raises `CorpusError` naming the file, the
position and the last page read, after every article before the break has been yielded. With `skip_errors`
it is counted once in `stats.errors_skipped` and the corpus simply ends there, since nothing after a parse
error can be trusted. A page whose wikitext cannot be cleaned is an error too; with `skip_errors` that page
alone is counted and skipped.

Disambiguation and list-only pages are indexed, flagged (`Document.kind`) and counted
(`disambiguation_flagged`, `list_flagged`); why flagged rather than skipped, and how they are told, is in
index_build.readers.page_kinds.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple
from xml.etree.ElementTree import ParseError

import mwxml
from mwxml.errors import MalformedXML

from index_build.documents import CorpusError, Document, Section
from index_build.readers.common import CorpusStats, one_line, open_binary
from index_build.readers.page_kinds import DISAMBIGUATION, LIST_ONLY, page_kind
from index_build.readers.siteinfo import with_siteinfo
from index_build.readers.urls import normalise_prefix, page_url, prefix_from_siteinfo
from index_build.readers.wikitext import wikitext_to_text

logger = logging.getLogger(__name__)

# "#REDIRECT [[Target]]" in the languages of the larger Wikipedias; matched case-insensitively at the start.
REDIRECT_WORDS: tuple[str, ...] = (
    "REDIRECT", "WEITERLEITUNG", "REDIRECTION", "REDIRECCIÓN", "REDIRECCIÓ", "RINVIA", "RINVIO", "PATRZ",
    "PRZEKIERUJ", "DOORVERWIJZING", "OMDIRIGERING", "PŘESMĚRUJ", "ÁTIRÁNYÍTÁS", "OHJAUS", "UUDELLEENOHJAUS",
    "YÖNLENDİRME", "YÖNLENDİR", "REDIRECIONAMENTO", "ALIH", "ĐỔI", "ПЕРЕНАПРАВЛЕНИЕ", "ПЕРЕНАПР",
    "ПЕРЕНАПРАВЛЕННЯ", "ПРЕНАСОЧВАНЕ", "ВИЖ", "ΑΝΑΚΑΤΕΥΘΥΝΣΗ", "הפניה", "تحويل", "تغییرمسیر",
    "重定向", "转到", "轉到", "転送", "リダイレクト", "넘겨주기",
)  # fmt: skip
_REDIRECT = re.compile(r"\s*#\s*(?:" + "|".join(map(re.escape, REDIRECT_WORDS)) + r")\s*:?\s*\[\[", re.IGNORECASE)

CHUNK_PAGES = 8  # pages per pool task: enough to amortise pickling, small enough to balance the workers
CHUNK_CHARS = 1_000_000  # ... or fewer when the pages are long
TASKS_PER_WORKER = 2  # tasks in flight per worker: keeps every worker busy, bounds memory
_EXPAT_ENDED_EARLY = (3, 5)  # expat's "no element found" and "unclosed token": the input stopped mid-document


class _Page(NamedTuple):
    """An article's metadata and wikitext, as read from the XML, before cleaning.

    A page that is not cleaned (a redirect, another namespace, no text) travels as a stub whose `skipped`
    names its `CorpusStats` counter: counting it where documents are yielded, in file order, rather than
    where pages are read ahead of the cleaning pool, makes `stats` at any yield cover exactly the pages up to
    that document, which is what lets a killed build resume after it (`skip`).
    """

    id: str
    title: str
    revision: str | None
    timestamp: str | None
    wikitext: str
    skipped: str | None = None


def is_redirect(wikitext: str | None) -> bool:
    """Whether a page's text is a redirect ("#REDIRECT [[X]]", or its translation)."""
    return wikitext is not None and _REDIRECT.match(wikitext) is not None


def read_mediawiki(
    path: Path,
    stats: CorpusStats,
    *,
    base_url: str | None = None,
    skip_errors: bool = False,
    workers: int = 1,
    skip: int = 0,
) -> Iterator[Document]:
    """Yield the cleaned articles of a MediaWiki XML export, in dump order, counting what is skipped in `stats`.

    URLs come from siteinfo's `<base>`, else from `base_url` (an article URL prefix), else are None. The
    first `skip` pages are parsed past but neither cleaned nor counted (resuming a read; see `CorpusStats`).
    """
    with open_binary(path) as raw:
        dump = _open_dump(path, raw)
        prefix = prefix_from_siteinfo(dump.site_info.base) or normalise_prefix(base_url)
        namespaces = tuple(sorted({ns.name for ns in dump.site_info.namespaces or () if ns.name}))
        pages = _articles(path, dump, stats, skip_errors, skip)
        cleaned = _clean_serial(pages, namespaces) if workers <= 1 else _clean_parallel(pages, namespaces, workers)
        try:
            yield from _documents(path, cleaned, prefix, stats, skip_errors)
        finally:
            cleaned.close()  # a consumer that stops early shuts the pool down now, not at garbage collection


def _documents(
    path: Path,
    cleaned: Iterator[tuple[_Page, _Result | None]],
    prefix: str | None,
    stats: CorpusStats,
    skip_errors: bool,
) -> Iterator[Document]:
    """Documents from cleaned pages; pages that failed to clean are errors, pages left empty are skipped."""
    for page, result in cleaned:
        if page.skipped is not None:
            setattr(stats, page.skipped, getattr(stats, page.skipped) + 1)
            continue
        if isinstance(result, str):
            message = f"{path}: cannot clean page id {page.id} ({page.title!r}): {result}"
            if not skip_errors:
                raise CorpusError(message)
            stats.errors_skipped += 1
            logger.warning("skipping: %s", message)
            continue
        assert result is not None  # only skipped pages come without a cleaning result
        text, sections, kind = result
        if not text:
            stats.empty_skipped += 1
            continue
        stats.documents += 1
        stats.disambiguation_flagged += kind == DISAMBIGUATION
        stats.list_flagged += kind == LIST_ONLY
        yield Document(
            source_id=page.id,
            title=page.title,
            text=text,
            url=page_url(prefix, page.title) if prefix else None,
            revision=page.revision,
            timestamp=page.timestamp,
            sections=sections,
            kind=kind,
        )


def _open_dump(path: Path, raw: BinaryIO) -> mwxml.Dump:
    """mwxml's dump over the byte stream (the XML parser reads the encoding from the BOM or declaration)."""
    try:
        return mwxml.Dump.from_file(with_siteinfo(raw))
    except (ParseError, MalformedXML, EOFError, OSError, ValueError, AssertionError) as exc:
        raise CorpusError(f"{path} is not a readable MediaWiki XML export: {_describe(exc)}") from None


def _articles(path: Path, dump: mwxml.Dump, stats: CorpusStats, skip_errors: bool, skip: int = 0) -> Iterator[_Page]:
    """Every page after the first `skip`: namespace-0, non-redirect pages with text, the rest as stubs.

    A redirect is counted as a redirect whatever its namespace. Of a page's revisions the last (newest) is kept.
    """
    last = "before the first page"
    try:
        for number, page in enumerate(dump.pages):
            last = f"last page seen: id {page.id}, {page.title!r}"
            revision = None
            for revision in page:  # noqa: B007 - a full-history dump has many; the last is the current text
                pass
            if number < skip:
                continue
            wikitext = revision.text if revision is not None else None
            if page.redirect is not None or is_redirect(wikitext):
                skipped: str | None = "redirects_skipped"
            elif page.namespace != 0:
                skipped = "other_namespace_skipped"
            elif revision is None or not wikitext or not wikitext.strip():
                skipped = "empty_skipped"
            else:
                skipped = None
            yield _Page(
                id=str(page.id),
                title=page.title,
                revision=str(revision.id) if revision is not None and revision.id is not None else None,
                timestamp=str(revision.timestamp) if revision is not None and revision.timestamp is not None else None,
                wikitext=wikitext if skipped is None and wikitext is not None else "",
                skipped=skipped,
            )
    except (ParseError, MalformedXML, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, (EOFError, OSError)):
            kind = "is truncated or corrupt"
        elif getattr(exc, "code", None) in _EXPAT_ENDED_EARLY:
            kind = "is truncated (the XML ends before its last element closes)"
        else:
            kind = "has malformed XML"
        message = f"{path} {kind} ({last}): {_describe(exc)}"
        if not skip_errors:
            raise CorpusError(message) from None
        stats.errors_skipped += 1
        logger.warning("%s; reading stops there", message)


def _describe(exc: BaseException) -> str:
    """A parser exception in one short line, with the line and column in the decompressed XML when known."""
    text = str(exc)
    if isinstance(exc, ParseError):  # mwxml appends the next 500 bytes of input as ": b'...'..."
        text = re.split(r": b['\"]", text, maxsplit=1)[0]
    if isinstance(exc, EOFError) and not text:
        text = "the file ends too early"
    return one_line(text or type(exc).__name__, 200)


# Cleaning, in this process or in a pool: both yield (page, (text, sections, navigation kind or None) or an
# error message) in input order, and (stub, None) for a page that is not to be cleaned.
_Result = tuple[str, tuple[Section, ...], str | None] | str


def clean_chunk(pages: list[tuple[str, str]], namespaces: tuple[str, ...]) -> list[_Result]:
    """Clean several pages' (title, wikitext); a page that fails gives its error message (the pool's task)."""
    results: list[_Result] = []
    for title, text in pages:
        try:
            results.append((*wikitext_to_text(text, namespaces), page_kind(title, text, namespaces)))
        except Exception as exc:  # noqa: BLE001 - reported per page by the parent, with the page named
            results.append(one_line(f"{type(exc).__name__}: {exc}", 200))
    return results


def _clean_serial(
    pages: Iterable[_Page], namespaces: tuple[str, ...]
) -> Generator[tuple[_Page, _Result | None], None, None]:
    for page in pages:
        yield page, None if page.skipped else clean_chunk([(page.title, page.wikitext)], namespaces)[0]


def _with_results(chunk: list[_Page], results: list[_Result]) -> Iterator[tuple[_Page, _Result | None]]:
    """A chunk's pages paired with the cleaning results of its non-stub pages, in order."""
    cleaned = iter(results)
    for page in chunk:
        yield page, None if page.skipped else next(cleaned)


def _clean_parallel(
    pages: Iterable[_Page], namespaces: tuple[str, ...], workers: int
) -> Generator[tuple[_Page, _Result | None], None, None]:
    """Clean in a pool with at most `TASKS_PER_WORKER * workers` chunks in flight, yielding in input order.

    A stream error raised while reading pages is re-raised only after the pages read before it are yielded,
    so that every worker count yields the same documents before the same error.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(_start_method()))
    window: deque[tuple[list[_Page], Future[list[_Result]]]] = deque()
    chunks = _chunks(pages)
    error: CorpusError | None = None
    try:
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except CorpusError as exc:
                error = exc
                break
            texts = [(p.title, p.wikitext) for p in chunk if not p.skipped]
            window.append((chunk, pool.submit(clean_chunk, texts, namespaces)))
            if len(window) >= TASKS_PER_WORKER * workers:
                done, future = window.popleft()
                yield from _with_results(done, future.result())
        while window:
            done, future = window.popleft()
            yield from _with_results(done, future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if error is not None:
        raise error


def _start_method() -> str:
    """The pool's start method.

    "fork" while this process runs a single thread: workers start at once, inherit the imported modules and do
    not re-import `__main__` (so a script without an `if __name__ == "__main__"` guard works). With other
    threads alive (a progress bar's monitor, an encoder's pool) fork could copy a lock held mid-operation, so
    then "forkserver" (or "spawn" where there is none), which need that guard as all multiprocessing does.
    """
    methods = multiprocessing.get_all_start_methods()
    if threading.active_count() == 1 and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _chunks(pages: Iterable[_Page]) -> Iterator[list[_Page]]:
    """Group pages into tasks of at most `CHUNK_PAGES` pages or about `CHUNK_CHARS` characters.

    If reading fails, the pages read so far still come out as a last chunk before the error.
    """
    chunk: list[_Page] = []
    size = articles = 0  # stubs ride along in a chunk without counting as work
    iterator = iter(pages)
    while True:
        try:
            page = next(iterator)
        except StopIteration:
            break
        except CorpusError:
            if chunk:
                yield chunk
            raise
        chunk.append(page)
        size += len(page.wikitext)
        articles += page.skipped is None
        if articles >= CHUNK_PAGES or size >= CHUNK_CHARS:
            yield chunk
            chunk, size, articles = [], 0, 0
    if chunk:
        yield chunk
