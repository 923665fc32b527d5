"""SQuAD v1.1/v2.0 JSON (`data[].title`, `data[].paragraphs[].context`): one document per paragraph.

This is the corpus half of SQuAD evaluation: every paragraph becomes a document, so that "is the gold
paragraph in the top k" is a document-level question. The paragraph's id is its position in the file,
`"{article_index}.{paragraph_index}"` (`paragraph_id`), the same id the question reader
(`evaluation.questions`) reports as a question's gold document, so the two agree by construction.

The file is one JSON document and is loaded whole: the largest SQuAD file (train v2.0) is about 40 MB.
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

# SQuAD's paragraphs are English Wikipedia's, and the file carries no site of its own.
WIKIPEDIA_PREFIX = "https://en.wikipedia.org/wiki/"


def paragraph_id(article_index: int, paragraph_index: int) -> str:
    """The source id of a paragraph: its article's and its own 0-based position in the file."""
    return f"{article_index}.{paragraph_index}"


def article_title(raw: str) -> str:
    """SQuAD titles are Wikipedia page names (`Sky_(United_Kingdom)`); shown with spaces, as on the page."""
    return raw.replace("_", " ").strip()


def load_squad(path: Path) -> list[Any]:
    """The `data` list of a SQuAD file, or `CorpusError` saying why the file is not one.

    Shared with the question reader so that a file is judged the same way as a corpus and as questions.
    """
    with open_binary(path) as fh:
        try:
            raw = fh.read()
        except (EOFError, OSError) as exc:
            raise CorpusError(f"{path} is truncated or corrupt: {one_line(exc, 160)}") from None
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not valid UTF-8 (byte {exc.start}); a SQuAD file is UTF-8 JSON") from None
    except ValueError as exc:
        raise CorpusError(f"{path} is not valid SQuAD JSON: {one_line(exc, 160)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise CorpusError(f'{path} is not a SQuAD file: expected a JSON object with a "data" list of articles')
    return document["data"]


def check_article(article: Any, where: str) -> tuple[str, list[Any]]:
    """An article's raw title and its paragraphs, or `ValueError` naming what is wrong at `where`."""
    if not isinstance(article, dict):
        raise ValueError(f"{where} is not an object")
    title, paragraphs = article.get("title"), article.get("paragraphs")
    if not isinstance(title, str):
        raise ValueError(f'{where} has no "title" string')
    if not isinstance(paragraphs, list):
        raise ValueError(f'{where} has no "paragraphs" list')
    return title, paragraphs


def check_paragraph(paragraph: Any, where: str) -> dict[str, Any]:
    """A paragraph object with a string "context", or `ValueError` naming what is wrong at `where`."""
    if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
        raise ValueError(f'{where} has no "context" string')
    return paragraph


def read_squad(
    path: Path, stats: CorpusStats, *, base_url: str | None = None, skip_errors: bool = False, skip: int = 0
) -> Iterator[Document]:
    """Yield one `Document` per paragraph with non-blank context, in file order, after the first `skip`
    records (a record is a paragraph, or a malformed article counted as one error).

    The text is the context exactly as in the file (answer offsets stay valid) and is one section. A
    malformed article or paragraph is a `CorpusError` naming it; with `skip_errors` it is counted and
    skipped, and the ids of the others do not move, since they are positions in the file.
    """
    data = load_squad(path)
    prefix = normalise_prefix(base_url) or WIKIPEDIA_PREFIX
    records = 0
    for a, article in enumerate(data):
        try:
            raw_title, paragraphs = check_article(article, f"data[{a}]")
        except ValueError as exc:
            records += 1
            if records > skip:
                _bad(path, exc, stats, skip_errors)
            continue
        title = article_title(raw_title)
        url = page_url(prefix, title) if title else None
        for p, paragraph in enumerate(paragraphs):
            records += 1
            if records <= skip:
                continue
            try:
                context = check_paragraph(paragraph, f"data[{a}].paragraphs[{p}]")["context"]
            except ValueError as exc:
                _bad(path, exc, stats, skip_errors)
                continue
            if not context.strip():
                stats.empty_skipped += 1
                continue
            document = Document(
                source_id=paragraph_id(a, p),
                title=title,
                text=context,
                url=url,
                sections=(Section("", 0, len(context)),),
            )
            problem = document.unicode_problem()
            if problem is not None:
                _bad(path, ValueError(f"data[{a}].paragraphs[{p}] ({title!r}) {problem}"), stats, skip_errors)
                continue
            stats.documents += 1
            yield document


def _bad(path: Path, exc: ValueError, stats: CorpusStats, skip_errors: bool) -> None:
    if not skip_errors:
        raise CorpusError(f"{path}: {exc} (a SQuAD file has data[].title and data[].paragraphs[].context); {SKIP_HINT}")
    stats.errors_skipped += 1
    logger.warning("skipping %s: %s", path, exc)
