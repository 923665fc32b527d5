"""JSON lines corpora: our own `{"id", "title", "text", "url"?}` and BEIR's corpus.jsonl `{"_id", "title", "text"}`.

The text is taken as it is (already plain text, no wikitext cleaning) and is one section. A bad line is an
error naming the file and line number, so that the user can fix that line; with `skip_errors` it is counted
and skipped instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from index_build.documents import CorpusError, Document, Section
from index_build.readers.common import SKIP_HINT, CorpusStats, one_line, open_binary
from index_build.readers.urls import normalise_prefix, page_url

logger = logging.getLogger(__name__)

ID_KEYS = {"jsonl": "id", "beir": "_id"}


class _BadLine(ValueError):
    """A line that cannot become a document; the message says why."""


def read_jsonl(
    path: Path,
    stats: CorpusStats,
    *,
    flavour: str = "jsonl",
    base_url: str | None = None,
    skip_errors: bool = False,
    skip: int = 0,
) -> Iterator[Document]:
    """Yield one `Document` per non-blank line, in file order, after the first `skip` non-blank lines.

    `flavour` "jsonl" wants `id` and `text` (`title` and `url` optional); "beir" wants `_id` and `text`
    (`title` optional, BEIR has no URLs). A record without a URL gets `base_url` + its title when given.
    """
    id_key = ID_KEYS[flavour]
    prefix = normalise_prefix(base_url)
    with open_binary(path) as fh:
        number = records = 0
        while True:
            try:
                raw = fh.readline()
            except (EOFError, OSError) as exc:
                _stream_error(path, number, exc, stats, skip_errors)
                return
            if not raw:
                return
            number += 1
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            records += 1
            if records <= skip:
                continue
            try:
                document = _document(raw, id_key, flavour == "jsonl", prefix)
            except _BadLine as exc:
                if not skip_errors:
                    raise CorpusError(f"{path}, line {number}: {exc}; {SKIP_HINT}") from None
                stats.errors_skipped += 1
                logger.warning("skipping %s, line %d: %s", path, number, exc)
                continue
            if not document.text.strip():
                stats.empty_skipped += 1
                continue
            stats.documents += 1
            yield document


def _document(raw: bytes, id_key: str, has_url: bool, prefix: str | None) -> Document:
    """The document one line describes, or `_BadLine` saying what is wrong with it."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadLine(f"not valid UTF-8 (byte {exc.start} of the line)") from None
    try:
        record: Any = json.loads(line)
    except ValueError as exc:
        raise _BadLine(f"not valid JSON ({one_line(exc, 120)})") from None
    if not isinstance(record, dict):
        raise _BadLine(f"expected a JSON object, got {type(record).__name__}")
    missing = [key for key in (id_key, "text") if record.get(key) is None]
    if missing:
        raise _BadLine(f"missing required key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    text, title = record["text"], record.get("title") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise _BadLine('"text" and "title" must be strings')
    url = record.get("url") if has_url else None
    if url is not None and not isinstance(url, str):
        raise _BadLine('"url" must be a string')
    if url is None and prefix and title:
        url = page_url(prefix, title)
    document = Document(
        source_id=str(record[id_key]),
        title=title,
        text=text,
        url=url or None,
        sections=(Section("", 0, len(text)),),
    )
    problem = document.unicode_problem()
    if problem is not None:
        raise _BadLine(f"record {title!r} {problem}")
    return document


def _stream_error(path: Path, number: int, exc: BaseException, stats: CorpusStats, skip_errors: bool) -> None:
    """A compressed JSONL file that breaks off (truncated download): an error, or with skip_errors its end."""
    message = f"{path} is truncated or corrupt after line {number}: {one_line(exc, 120)}"
    if not skip_errors:
        raise CorpusError(message) from None
    stats.errors_skipped += 1
    logger.warning("%s; reading stops there", message)
