"""The build's first stage: read every corpus into the passage store, resuming a killed read where it stopped.

The store is written under a `.partial` name with checkpoints (index_build.store_writer). Each checkpoint
records, with the rows, where the reading stood: which corpora were finished (with their final counts), and
for the corpus being read its `CorpusStats` at the last stored document. A rerun continues from there with
`Corpus.read(after=...)`, which passes over the records already stored without cleaning them, so the store
and the reader counts come out identical to an uninterrupted read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from index_build.documents import CorpusError, Document
from index_build.faults import stage_io
from index_build.readers import Corpus, CorpusStats
from index_build.store_writer import CHECKPOINT_PASSAGES, read_checkpoint, write_store
from retriever.bundle import sha256_file


@dataclass(frozen=True)
class ReadResult:
    """What the build state keeps of the read: the sources' identities and each reader's counts."""

    sources: list[dict[str, Any]]
    reader_stats: dict[str, dict[str, int]]
    resumed_documents: int  # documents kept from a killed read (0 when it started afresh)
    passages_merged: int = 0  # short pieces joined to a neighbour (index_build.passages)


def partial_store(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".partial")


def read_corpora(
    corpora: list[Corpus],
    partial: Path,
    passage_words: int,
    progress: bool = True,
    checkpoint_passages: int = CHECKPOINT_PASSAGES,
) -> ReadResult:
    """Fill the store file `partial` from the corpora, in order, continuing what a killed read left there.

    When this returns the file holds every passage; the caller records the result, then `finish_store`s
    and renames it, so that a kill between the two finds either a complete partial file or a finished store.
    A CorpusError from a corpus leaves the file for the caller to delete or keep.
    """
    checkpoint = read_checkpoint(partial)
    if checkpoint is not None and checkpoint.complete:
        _Position.restore(corpora, checkpoint.position)
        counts = checkpoint.counts
    else:
        position = _Position.restore(corpora, checkpoint.position if checkpoint is not None else None)
        with tqdm(unit="article", desc="reading", disable=not progress) as bar:
            counts = write_store(
                partial,
                position.documents(corpora, bar),
                passage_words,
                position.record,
                resume=checkpoint,
                checkpoint_passages=checkpoint_passages,
            )
    if counts.passages == 0:
        names = ", ".join(str(c.path) for c in corpora)
        raise CorpusError(f"{names}: no article has any text to index")
    return ReadResult(
        sources=[_source_record(c) for c in corpora],
        reader_stats={str(c.path): asdict(c.stats) for c in corpora},
        resumed_documents=checkpoint.counts.documents if checkpoint is not None else 0,
        passages_merged=counts.merged,
    )


def _source_record(corpus: Corpus) -> dict[str, Any]:
    """A corpus file's identity for the manifest, read again now that it is read: it must still be there."""
    with stage_io("reading", corpus.path, "read"):
        return {
            "path": str(corpus.path),
            "format": corpus.format,
            "size": Path(corpus.path).stat().st_size,
            "sha256": sha256_file(corpus.path),
        }


class _Position:
    """Where reading stands: finished corpora's counts, the corpus being read, and its counts so far.

    `record()` is what a checkpoint stores (JSON); `restore` rebuilds the position from it.
    """

    def __init__(self, current: int = 0, after: CorpusStats | None = None) -> None:
        self.current = current
        self.after = after  # resume the current corpus after this; None = from its start
        self.finished: dict[int, dict[str, int]] = {}
        self._corpus: Corpus | None = None

    @classmethod
    def restore(cls, corpora: list[Corpus], record: Any) -> _Position:
        """The position a checkpoint recorded; finished corpora get back their final counts."""
        if record is None:  # killed before the first checkpoint: nothing stored, read from the start
            return cls()
        position = cls(record["current"], CorpusStats(**record["stats"]))
        for key, stats in record["finished"].items():
            position.finished[int(key)] = stats
            corpora[int(key)].stats = CorpusStats(**stats)
        return position

    def record(self) -> dict[str, Any]:
        stats = asdict(self._corpus.stats) if self._corpus is not None else asdict(CorpusStats())
        return {"current": self.current, "stats": stats, "finished": {str(k): v for k, v in self.finished.items()}}

    def documents(self, corpora: list[Corpus], bar: Any) -> Iterator[tuple[str, Document]]:
        if self.after is not None:
            bar.update(self.after.documents + sum(s["documents"] for s in self.finished.values()))
        for number in range(self.current, len(corpora)):
            corpus = self._corpus = corpora[number]
            self.current = number
            name = Path(corpus.path).name
            for document in corpus.read(after=self.after):
                bar.update()
                yield name, document
            self.after = None
            self.finished[number] = asdict(corpus.stats)
        # Past the last corpus: a checkpoint now describes a finished read.
        self.current, self._corpus = len(corpora), None
