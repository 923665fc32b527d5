"""`groundsearch build --ray`: Ray workers embed the shards, and the index answers like a single-process build.

The reference is conftest's small_index: the same corpus and shard size, built in one process. Every
process a build starts carries a tag in its environment, so the tests can tell that none outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import RESUME_SHARD_SIZE

from index_build import BuildOptions, RunOptions, build_index
from index_build.distributed import DistributedError, actor_slots, visibility_problem
from retriever import Retriever
from retriever.bundle import FAISS_NAME
from retriever.faiss_io import read_faiss

QUERIES = ["hotel in Prince Edward Island", "gunpowder", "complex manifold", "polymer", "a boy with a magic watch"]
TAG = "GROUNDSEARCH_TEST_RAY_TAG"
PASSAGES = 425  # in corpus_xml


def _build_command(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "groundsearch", "build", str(corpus), "--out", str(out),
            "--shard-size", str(RESUME_SHARD_SIZE), "--workers", "1", *extra]  # fmt: skip


def _tagged(tag: str) -> list[int]:
    """Live processes (zombies have no environment) that inherited this tag: Ray's and its workers."""
    marker = f"{TAG}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


def _assert_all_gone(tag: str, seconds: float = 30) -> None:
    """Ray stops its processes asynchronously: give them a moment, then kill and name any that stayed."""
    deadline = time.monotonic() + seconds
    while (left := _tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    names = []
    for pid in left:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            os.kill(pid, signal.SIGKILL)  # started by this test: do not leave it running
        except OSError:
            continue
    assert not names, f"processes left running after the build: {names}"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds leftover processes through /proc")
def test_killed_ray_build_resumes_and_answers_exactly_like_a_single_process_one(
    tmp_path: Path, corpus_xml: Path, small_index: Path
) -> None:
    out = tmp_path / "ray.idx"
    shards = tmp_path / "ray.idx.partial" / "shards"
    tag = uuid.uuid4().hex
    env = {**os.environ, TAG: tag}
    started = time.monotonic()
    proc = subprocess.Popen(
        _build_command(corpus_xml, out, "--ray", "local", "--quiet"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal or a job scheduler would kill it
    )
    while time.monotonic() - started < 300 and proc.poll() is None:
        if shards.is_dir() and len(list(shards.glob("shard-*.npy"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    first_shards = time.monotonic() - started
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    # Counted once every process of the killed build is gone: a Ray worker outlives the driver's process group
    # for a moment and may finish the shard it was writing.
    _assert_all_gone(tag)
    kept = sorted(shards.glob("shard-*.npy"))
    assert len(kept) >= 2 and not out.exists()

    started = time.monotonic()
    rerun = subprocess.run(
        _build_command(corpus_xml, out, "--ray", "local"), env=env, capture_output=True, text=True, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "(resumed: read, lexical kept)" in rerun.stdout, rerun.stdout
    # The progress bar starts at the kept shards: they were not embedded again.
    assert f"| {len(kept) * RESUME_SHARD_SIZE}/{PASSAGES} [" in rerun.stderr, rerun.stderr[-2000:]
    assert "embedding on 1 Ray worker" in rerun.stderr
    assert not (tmp_path / "ray.idx.partial").exists()
    _assert_all_gone(tag)
    took = time.monotonic() - started
    print(f"two shards after {first_shards:.1f}s; resume with {len(kept)} shards kept: {took:.1f}s")

    distributed, reference = Retriever.open(out), Retriever.open(small_index)
    for got, want in zip(distributed.search_batch(QUERIES, k=10), reference.search_batch(QUERIES, k=10), strict=True):
        assert [h.passage_id for h in got] == [h.passage_id for h in want]
        assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(got, want, strict=True))
    mine, theirs = read_faiss(out / FAISS_NAME), read_faiss(small_index / FAISS_NAME)
    assert mine.ntotal == theirs.ntotal == PASSAGES
    vectors = [np.vstack([index.reconstruct(i) for i in range(PASSAGES)]) for index in (mine, theirs)]
    print(f"largest difference from the single-process vectors: {np.abs(vectors[0] - vectors[1]).max():.2e}")
    assert np.allclose(vectors[0], vectors[1], rtol=0, atol=1e-5)

    # The manifests agree but for the time and the files: tantivy names its segments at random in any build.
    manifests = [json.loads((p / "manifest.json").read_text(encoding="utf-8")) for p in (out, small_index)]
    assert manifests[0]["files"]["store"] == manifests[1]["files"]["store"]
    for manifest in manifests:
        del manifest["created_at"], manifest["files"]
    assert manifests[0] == manifests[1]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds leftover processes through /proc")
def test_library_build_on_ray_with_a_model_folder_named_relatively(
    tmp_path: Path, corpus_xml: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the library, in this process: a relative --model folder, and Ray stopped afterwards.

    A local cluster's workers share this working directory; a remote node's do not, which is why the folder
    is handed to them as an absolute path. Here that is exercised, not proven.
    """
    import ray

    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG, tag)  # inherited by the local cluster that ray.init starts from this process
    monkeypatch.chdir(tiny_model.parent)
    options = BuildOptions(model=tiny_model.name, shard_size=RESUME_SHARD_SIZE * 2)
    build_index([corpus_xml], tmp_path / "one.idx", options, RunOptions(progress=False, workers=1))
    report = build_index(
        [corpus_xml], tmp_path / "ray.idx", options, RunOptions(progress=False, workers=1, ray="local")
    )
    assert not ray.is_initialized()
    _assert_all_gone(tag)
    assert report.resumed_stages == [] and report.manifest.model.name == tiny_model.name
    vectors = [read_faiss(tmp_path / name / FAISS_NAME) for name in ("one.idx", "ray.idx")]
    got, want = (np.vstack([index.reconstruct(i) for i in range(PASSAGES)]) for index in vectors)
    assert np.allclose(got, want, rtol=0, atol=1e-5)


def test_ray_not_installed_is_a_one_line_error_before_anything_is_written(tmp_path: Path, corpus_xml: Path) -> None:
    out = tmp_path / "none.idx"
    # ray is not what is tested here, so hiding it from the import system is fair; the CLI runs for real.
    hide_ray = "import sys; sys.modules['ray'] = None; from groundsearch.cli import main; main()"
    command = [sys.executable, "-c", hide_ray, *_build_command(corpus_xml, out, "--ray", "local")[3:]]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "error: --ray needs Ray, which is not installed: pip install groundsearch[ray]\n"
    assert not out.exists() and not (tmp_path / "none.idx.partial").exists()


def test_an_address_where_nothing_answers_fails_at_once_before_anything_is_written(
    tmp_path: Path, corpus_xml: Path
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "nowhere.idx"
    started = time.monotonic()
    with pytest.raises(DistributedError, match=f"cannot connect to the Ray cluster at '127.0.0.1:{port}'.*refused"):
        build_index([corpus_xml], out, BuildOptions(), RunOptions(progress=False, ray=f"127.0.0.1:{port}"))
    assert time.monotonic() - started < 10  # ray.init itself would retry for minutes
    assert not out.exists() and not (tmp_path / "nowhere.idx.partial").exists()


def test_a_worker_that_does_not_share_the_staging_directory_is_named(tmp_path: Path) -> None:
    probe = tmp_path / "shards" / ".ray-probe-x"
    assert "cannot see the staging directory" in str(visibility_problem(probe, "token"))
    probe.parent.mkdir()
    probe.write_text("another driver's token", encoding="utf-8")
    assert "sees another" in str(visibility_problem(probe, "token"))
    probe.write_text("token", encoding="utf-8")
    assert visibility_problem(probe, "token") is None


def test_actors_take_every_gpu_or_groups_of_cores() -> None:
    def node(cpus: int, gpus: int = 0, alive: bool = True) -> dict[str, object]:
        return {"NodeID": os.urandom(28).hex(), "Alive": alive, "Resources": {"CPU": cpus, "GPU": gpus}}

    gpu_cluster = [node(0), node(16, gpus=4), node(16, gpus=4), node(64)]
    assert [(r["num_gpus"], on) for r, on, _ in actor_slots(gpu_cluster, None)] == [(1, "cuda")] * 8
    on_cpus = actor_slots(gpu_cluster, "cpu")  # --device cpu: the cores only; a head with no CPU gets nothing
    assert [threads for _, _, threads in on_cpus] == [8, 8] + [8, 8] + [8] * 8
    assert [threads for _, _, threads in actor_slots([node(2), node(12), node(99, alive=False)], None)] == [2, 12]
    with pytest.raises(DistributedError, match="no GPU"):
        actor_slots([node(8)], "cuda")
