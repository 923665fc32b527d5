"""The build's saved state (index_build.state): what it records, how it reads back, what a mismatch says.

No model, no corpus: a state file and a staging directory in tmp_path. Milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from index_build import BuildError, BuildOptions
from index_build.staging import open_staging
from index_build.state import STATE_NAME, BuildState, EncoderRecord, load_state, save_state
from retriever.bundle import SourceInfo

IDENTITY = {"options": asdict(BuildOptions()), "sources": [{"path": "/c.xml", "format": "mediawiki"}]}


def test_a_new_state_has_nothing_done() -> None:
    state = BuildState(IDENTITY)
    assert not state.read and not state.tuned and state.query_encoder is None and state.faiss_add_block is None
    assert json.loads(state.to_json()) == {"identity": IDENTITY}  # absent key: stage not done


def test_every_result_reads_back(tmp_path: Path) -> None:
    state = BuildState(
        IDENTITY,
        sources=(SourceInfo("/c.xml", "mediawiki", 10, "ab"),),
        reader_stats={"/c.xml": {"documents": 3, "errors_skipped": 2}},
        vectors_reused={0: 64, 1: 0, 2: 17},
        reused_from=("/old.idx",),
        faiss_add_block=100,
        tuned=True,
        ann=None,  # tuned, and exact: recorded as null, not absent
        query_encoder=EncoderRecord(None, "not Transformer + Pooling"),
    )
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state
    assert json.loads((tmp_path / STATE_NAME).read_text())["ann"] is None
    assert state.errors_skipped == 2 and state.reused == 81


def test_a_state_file_of_the_old_layout_resumes(tmp_path: Path) -> None:
    """Older builds wrote the same keys as a plain dict: their staging directories still resume."""
    old = {"identity": IDENTITY, "sources": [], "reader_stats": {}, "ann": {"params": {"nprobe": 4}}}
    (tmp_path / STATE_NAME).write_text(json.dumps(old), encoding="utf-8")
    state = load_state(tmp_path)
    assert state is not None and state.read and state.tuned and state.ann == {"params": {"nprobe": 4}}
    assert state.query_encoder is None and state.faiss_add_block is None


def test_other_options_are_named_as_the_command_line_spells_them(tmp_path: Path) -> None:
    staging = tmp_path / "x.idx.partial"
    state, created = open_staging(staging, IDENTITY)
    assert created and state == BuildState(IDENTITY)
    again, created = open_staging(staging, IDENTITY)
    assert not created and again == state
    other = asdict(BuildOptions(index_factory="HNSW32", memory_budget=None, tuning_queries=10, lexical=False))
    with pytest.raises(BuildError) as caught:
        open_staging(staging, {**IDENTITY, "options": other})
    message = str(caught.value)
    assert "--index was None, now 'HNSW32'" in message and "--index-factory" not in message
    assert "tuning_queries was 1000, now 10" in message and "--tuning-queries" not in message
    assert "--lexical/--no-lexical was True, now False" in message


def test_the_memory_budget_is_shown_as_a_size(tmp_path: Path) -> None:
    staging = tmp_path / "x.idx.partial"
    open_staging(staging, {**IDENTITY, "options": asdict(BuildOptions(memory_budget=4 << 30))})
    with pytest.raises(BuildError, match=r"--memory-budget was 4\.00 GiB, now 2\.00 GiB"):
        open_staging(staging, {**IDENTITY, "options": asdict(BuildOptions(memory_budget=2 << 30))})
