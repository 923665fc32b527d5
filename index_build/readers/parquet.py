"""Parquet corpora with `id`, `title`, `text` (and optionally `url`) columns: the layout of the published
Hugging Face `wikimedia/wikipedia` dataset, whose text is already plain.

Streamed a batch of rows at a time, so a multi-gigabyte file never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from index_build.documents import CorpusError, Document, Section
from index_build.readers.common import CorpusStats, one_line
from index_build.readers.urls import normalise_prefix, page_url

REQUIRED_COLUMNS: tuple[str, ...] = ("id", "title", "text")
OPTIONAL_COLUMNS: tuple[str, ...] = ("url",)
BATCH_ROWS = 1024


def read_parquet(path: Path, stats: CorpusStats, *, base_url: str | None = None, skip: int = 0) -> Iterator[Document]:
    """Yield one `Document` per row with non-empty text, in file order, after the first `skip` rows; one
    section spanning the text.

    Rows with empty or null text are counted as empty. A row without a URL gets `base_url` + its title.
    """
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise CorpusError(f"cannot read {path} as Parquet: {one_line(exc, 160)}") from None
    with parquet:
        names = set(parquet.schema_arrow.names)
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise CorpusError(
                f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"(a Parquet corpus needs {', '.join(REQUIRED_COLUMNS)}, and may have url)"
            )
        prefix = normalise_prefix(base_url)
        columns = list(REQUIRED_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in names]
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                values = {name: batch.column(name).to_pylist() for name in columns}
                urls = values.get("url") or [None] * batch.num_rows
                for ident, title, text, url in zip(values["id"], values["title"], values["text"], urls, strict=True):
                    row += 1
                    if row <= skip:
                        continue
                    if not text or not str(text).strip():
                        stats.empty_skipped += 1
                        continue
                    text, title = str(text), str(title or "")
                    if not url and prefix and title:
                        url = page_url(prefix, title)
                    stats.documents += 1
                    yield Document(
                        source_id=str(ident),
                        title=title,
                        text=text,
                        url=url or None,
                        sections=(Section("", 0, len(text)),),
                    )
        except (OSError, pa.ArrowException) as exc:
            raise CorpusError(f"{path} is corrupt after row {row}: {one_line(exc, 160)}") from None
