"""Write a bundle's lexical (BM25) index from the passage store, with the analyzer the reader registers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from index_build.faults import rust_os_error, stage_io
from retriever.bundle import embedding_text
from retriever.lexical import ID_FIELD, TEXT_FIELD, TOKENIZER, analyzer, schema
from retriever.store import PassageStore

HEAP_MB = 256  # tantivy's indexing buffer, split between its threads; larger only means fewer merges


def write_lexical(directory: Path, passages: Iterable[tuple[int, str]], threads: int | None = None) -> int:
    """Index (passage id, text) pairs into a new tantivy directory, atomically; returns how many were indexed.

    The index is built in a sibling `.tmp` directory and renamed, so `directory` is either absent or complete:
    a build killed here redoes only this stage.
    """
    import tantivy

    tmp = directory.with_name(directory.name + ".tmp")
    with stage_io("lexical", directory):
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            index = tantivy.Index(schema(), path=str(tmp))
            index.register_tokenizer(TOKENIZER, analyzer())
            workers = max(1, min(threads or os.cpu_count() or 1, 8))
            writer = index.writer(heap_size=HEAP_MB * 1_000_000, num_threads=workers)
            count = 0
            for passage_id, text in passages:
                writer.add_document(tantivy.Document(**{ID_FIELD: passage_id, TEXT_FIELD: text}))
                count += 1
            writer.commit()
            writer.wait_merging_threads()
            os.replace(tmp, directory)
        except ValueError as exc:  # tantivy's errors, a full disk among them (it quotes the OS error)
            fault = rust_os_error(exc)
            if fault is None:
                raise
            raise fault from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return count


def index_store(store: PassageStore, directory: Path, template: str, progress: bool = True) -> int:
    """BM25-index every passage of `store` as title, section and text: the same words the model embeds."""
    total = store.count()

    def texts() -> Iterable[tuple[int, str]]:
        with tqdm(total=total, unit="passage", desc="lexical", disable=not progress) as bar:
            for passage_id, title, section, text in store.iter_texts(0, total):
                bar.update()
                yield passage_id, embedding_text(title, section, text, template)

    return write_lexical(directory, texts())
