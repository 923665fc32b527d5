"""What a build has finished so far: a `BuildState`, saved as `build-state.json` in the staging directory.

The state is a frozen dataclass: a stage (index_build.stages) takes one and returns the next, and the build
saves it whenever it changes, so a killed build's rerun starts from the last saved one. Only results that
cannot be seen in the staging directory's files are kept here (the reader's counts, the tuning's measurement);
whether a file stage is done is decided by its file (a complete shard, `index.faiss`, `lexical/`).

The JSON layout is the one older builds wrote (absent key: stage not done), so their staging directories resume.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from index_build.faults import stage_io
from retriever.bundle import QueryEncoderInfo, SourceInfo, atomic_open

STATE_NAME = "build-state.json"


@dataclass(frozen=True)
class EncoderRecord:
    """The query-encoder stage's result: the exported encoder, or None and why there is none."""

    info: QueryEncoderInfo | None
    why: str | None


@dataclass(frozen=True)
class BuildState:
    """A build's progress. `identity` (the options and the corpus files) must match for a rerun to resume."""

    identity: dict[str, Any]
    # read: each corpus file's manifest record and each reader's counts (None: the read is not finished)
    sources: tuple[SourceInfo, ...] | None = None
    reader_stats: dict[str, dict[str, int]] | None = None
    # read: short pieces the splitter joined to a neighbour (None: read by a groundsearch that did not count them)
    passages_merged: int | None = None
    # embed: rows of each shard (by number) whose vectors came from a --reuse bundle, recorded before the shard's
    # files are written, so a resumed build still knows what an earlier run reused; and the bundles reused
    vectors_reused: dict[int, int] | None = None
    reused_from: tuple[str, ...] = ()
    # add: the first run's FAISS block size, so that a rerun with another finds the blocks it saved
    faiss_add_block: int | None = None
    # tune: the manifest's `ann` record (None for an exact index), once measured for the index on disk
    tuned: bool = False
    ann: dict[str, Any] | None = None
    # query encoder: None until the stage ran
    query_encoder: EncoderRecord | None = None

    @property
    def read(self) -> bool:
        return self.reader_stats is not None

    @property
    def reused(self) -> int:
        """Vectors taken from --reuse bundles rather than embedded, over every run of this build."""
        return sum((self.vectors_reused or {}).values())

    @property
    def errors_skipped(self) -> int:
        return sum(int(s.get("errors_skipped", 0)) for s in (self.reader_stats or {}).values())

    def replace(self, **changes: Any) -> BuildState:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        record: dict[str, Any] = {"identity": self.identity}
        if self.read:
            record["sources"] = [asdict(s) for s in self.sources or ()]
            record["reader_stats"] = self.reader_stats
            if self.passages_merged is not None:
                record["passages_merged"] = self.passages_merged
        if self.vectors_reused is not None:
            record["vectors_reused"] = {str(shard): rows for shard, rows in sorted(self.vectors_reused.items())}
            record["reused_from"] = list(self.reused_from)
        if self.faiss_add_block is not None:
            record["faiss_add_block"] = self.faiss_add_block
        if self.tuned:
            record["ann"] = self.ann
        if self.query_encoder is not None:
            info = self.query_encoder.info
            record["query_encoder"] = {"info": asdict(info) if info else None, "why": self.query_encoder.why}
        return json.dumps(record, indent=2)

    @classmethod
    def from_json(cls, text: str) -> BuildState:
        record = json.loads(text)
        encoder = record.get("query_encoder")
        return cls(
            identity=record["identity"],
            sources=tuple(SourceInfo(**s) for s in record["sources"]) if "sources" in record else None,
            reader_stats=record.get("reader_stats"),
            passages_merged=record.get("passages_merged"),
            vectors_reused=(
                {int(shard): rows for shard, rows in record["vectors_reused"].items()}
                if "vectors_reused" in record
                else None
            ),
            reused_from=tuple(record.get("reused_from", ())),
            faiss_add_block=record.get("faiss_add_block"),
            tuned="ann" in record,
            ann=record.get("ann"),
            query_encoder=(
                EncoderRecord(QueryEncoderInfo(**encoder["info"]) if encoder["info"] else None, encoder["why"])
                if encoder is not None
                else None
            ),
        )


def load_state(staging: Path) -> BuildState | None:
    """The state a build saved in `staging`, or None where it saved none."""
    path = staging / STATE_NAME
    if not path.exists():
        return None
    with stage_io("build state", path, "read"):
        return BuildState.from_json(path.read_text(encoding="utf-8"))


def save_state(staging: Path, state: BuildState) -> None:
    with stage_io("build state", staging / STATE_NAME), atomic_open(staging / STATE_NAME, "w", encoding="utf-8") as fh:
        fh.write(state.to_json())


__all__ = ["STATE_NAME", "BuildState", "EncoderRecord", "load_state", "save_state"]
