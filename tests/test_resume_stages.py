"""A build killed while reading or while adding to FAISS resumes from its checkpoints and equals an
uninterrupted build, byte for byte where the stage is deterministic.

The kill is real (SIGKILL of the building process); to make it land at a known point, the killed build
runs in a subprocess that wraps one function of the stage so that its Nth call kills the process. The
rerun is the plain CLI command, with nothing wrapped. The builds embed with the one-layer test model
(conftest.tiny_model): what is tested is the stages around embedding, and it embeds in a fraction of the time.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import RESUME_SHARD_SIZE, assert_same_index

from index_build import BuildOptions, RunOptions, build_index
from index_build.faiss_index import add_blocks, build_faiss
from retriever.bundle import STORE_NAME

FACTORY = "IVF8,Flat"

# Runs a build in which the Nth call of one stage's function SIGKILLs the process (argv: stage, N, corpus, out).
KILLED_BUILD = textwrap.dedent(
    """
    import os, signal, sys
    import index_build.faiss_index as faiss_index
    import index_build.read_stage as read_stage
    from index_build import BuildOptions, RunOptions, build_index

    stage, n, corpus, out, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    calls = 0

    def killing(original):
        def wrapper(*args, **kwargs):
            global calls
            calls += 1
            if calls == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return wrapper

    if stage == "read":  # a checkpoint is about to record its position: its rows are in, the record is not
        read_stage._Position.record = killing(read_stage._Position.record)
    else:  # about to add block n-1: the trained index and blocks 0..n-2 are saved
        faiss_index._add = killing(faiss_index._add)
    build_index(
        [corpus], out,
        BuildOptions(model=model, index_factory="{factory}", shard_size={shard_size}),
        RunOptions(progress=False, workers=2, checkpoint_passages=50, faiss_add_block=100),
    )
    """
).format(factory=FACTORY, shard_size=RESUME_SHARD_SIZE)


@pytest.fixture(scope="module")
def ivf_reference(tmp_path_factory: pytest.TempPathFactory, corpus_xml: Path, tiny_model: Path) -> Path:
    out = tmp_path_factory.mktemp("ivf") / "reference.idx"
    build_index(
        [corpus_xml],
        out,
        BuildOptions(model=str(tiny_model), index_factory=FACTORY, shard_size=RESUME_SHARD_SIZE),
        RunOptions(progress=False, workers=1),
    )
    return out


def _killed_build(stage: str, n: int, corpus: Path, out: Path, model: Path) -> None:
    command = [sys.executable, "-c", KILLED_BUILD, stage, str(n), str(corpus), str(out), str(model)]
    result = subprocess.run(command, check=False)
    assert result.returncode == -9, f"the build was to be killed, it exited with {result.returncode}"
    assert not out.exists()


def _rerun(corpus: Path, out: Path, model: Path) -> str:
    command = [sys.executable, "-m", "groundsearch", "build", str(corpus), "--out", str(out), "--index", FACTORY]
    command += ["--model", str(model), "--shard-size", str(RESUME_SHARD_SIZE), "--workers", "1", "--quiet"]
    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert not out.with_name(out.name + ".partial").exists()
    return rerun.stdout


def test_build_killed_while_reading_resumes_after_its_last_checkpoint(
    tmp_path: Path, corpus_xml: Path, ivf_reference: Path, tiny_model: Path
) -> None:
    out = tmp_path / "read.idx"
    _killed_build(
        "read", 4, corpus_xml, out, tiny_model
    )  # 3 checkpoints of >= 50 passages in, the 4th's rows past them
    partial = out.with_name(out.name + ".partial") / (STORE_NAME + ".partial")
    with sqlite3.connect(partial) as db:
        kept_documents, kept_passages = db.execute("SELECT documents, passages FROM build_progress").fetchone()
        stored = db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
    assert 150 <= kept_passages < stored, (kept_passages, stored)  # rows past the last checkpoint are on disk
    stdout = _rerun(corpus_xml, out, tiny_model)
    assert f"(resumed: {kept_documents} articles read kept)" in stdout, stdout
    assert_same_index(out, ivf_reference)


def test_build_killed_while_adding_to_faiss_keeps_training_and_saved_blocks(
    tmp_path: Path, corpus_xml: Path, ivf_reference: Path, tiny_model: Path
) -> None:
    out = tmp_path / "add.idx"
    _killed_build("add", 3, corpus_xml, out, tiny_model)  # trained index and 2 blocks of >= 100 vectors saved
    parts = out.with_name(out.name + ".partial") / "faiss-parts"
    assert sorted(p.name for p in parts.iterdir()) == ["added-000000.faiss", "added-000001.faiss", "trained.faiss"]
    stdout = _rerun(corpus_xml, out, tiny_model)  # the default block size differs: the first run's is kept in its state
    assert "(resumed: read, lexical, FAISS training, 2 FAISS blocks kept)" in stdout, stdout
    assert_same_index(out, ivf_reference)


@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,SQ8", "IVF16,PQ8np", "PCA32,IVF16,Flat"])
def test_adding_in_saved_blocks_makes_the_same_file(tmp_path: Path, factory: str) -> None:
    rng = np.random.default_rng(7)
    shards = []
    for number, rows in enumerate([300, 300, 250, 300, 120]):
        vectors = rng.standard_normal((rows, 64)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        shards.append(tmp_path / f"shard-{number}.npy")
        np.save(shards[-1], vectors)
    whole = faiss.serialize_index(build_faiss(shards, 64, factory, gpus=[]))
    parts = tmp_path / "parts"
    blocked = faiss.serialize_index(build_faiss(shards, 64, factory, [], parts, add_block=500))
    assert np.array_equal(whole, blocked)
    saved = {p.name: p.stat().st_mtime_ns for p in parts.iterdir()}
    assert sorted(saved) == ["added-000000.faiss", "added-000001.faiss", "added-000002.faiss", "trained.faiss"]
    again = faiss.serialize_index(build_faiss(shards, 64, factory, [], parts, add_block=500))
    assert np.array_equal(whole, again)
    assert {p.name: p.stat().st_mtime_ns for p in parts.iterdir()} == saved, "a rerun must reuse the saved parts"


def test_add_blocks_group_whole_shards() -> None:
    assert add_blocks([300, 300, 250, 300, 120], 500) == [[0, 1], [2, 3], [4]]
    assert add_blocks([10, 10], 1_000) == [[0, 1]]
    assert add_blocks([600, 10], 500) == [[0], [1]]
    assert add_blocks([], 500) == []
