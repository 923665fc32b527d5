"""A build killed with SIGKILL during embedding resumes with the same command and equals an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import RESUME_SHARD_SIZE

from retriever import Retriever

QUERIES = ["hotel in Prince Edward Island", "gunpowder", "complex manifold", "polymer", "a boy with a magic watch"]


def _build_command(corpus: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "groundsearch",
        "build",
        str(corpus),
        "--out",
        str(out),
        "--shard-size",
        str(RESUME_SHARD_SIZE),
        "--workers",
        "1",
        "--quiet",
    ]


def test_killed_build_resumes_and_answers_like_an_uninterrupted_one(
    tmp_path: Path, corpus_xml: Path, small_index: Path
) -> None:
    out = tmp_path / "resumed.idx"
    shards = tmp_path / "resumed.idx.partial" / "shards"
    proc = subprocess.Popen(_build_command(corpus_xml, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if shards.is_dir() and len(list(shards.glob("shard-*.npy"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = sorted(p.name for p in shards.glob("shard-*.npy"))
    assert len(kept) >= 2
    assert not out.exists(), "a killed build must not leave anything that looks like a finished index"

    started = time.monotonic()
    rerun = subprocess.run(_build_command(corpus_xml, out), capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert "(resumed: read, lexical kept)" in rerun.stdout, rerun.stdout  # the stages done before the kill
    assert not (tmp_path / "resumed.idx.partial").exists()
    print(f"resume took {time.monotonic() - started:.1f}s with {len(kept)} shards kept")

    resumed, reference = Retriever.open(out), Retriever.open(small_index)
    assert resumed.manifest.passages == reference.manifest.passages
    for got, want in zip(resumed.search_batch(QUERIES, k=10), reference.search_batch(QUERIES, k=10), strict=True):
        assert [h.passage_id for h in got] == [h.passage_id for h in want]
        assert [h.text for h in got] == [h.text for h in want]
        assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(got, want, strict=True))
