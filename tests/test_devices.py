"""`--gpus`: choosing devices, embedding shards on several of them at once, and the FAISS GPU helpers.

CI has no GPU, so GPU branches are covered where they are plain logic (a given device count, byte counts,
selection limits) and the pool runs on two CPU devices: two real worker processes, the real packaged model,
a real store of real articles. The reference is the single-process `embed_passages` over the same store.
"""

from __future__ import annotations

import multiprocessing
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import faiss
import numpy as np
import pytest
import torch

from index_build.devices import GpuSelectionError, parse_gpus, torch_devices
from index_build.embed import embed_passages, shard_path
from index_build.embed_pool import EmbedPoolError, embed_on_devices, worker_threads
from index_build.faiss_gpu import (
    GPU_MAX_SELECTION_K,
    TEMP_MEMORY_CAP,
    TEMP_MEMORY_FLOOR,
    FaissGpuError,
    gpu_can_search,
    gpu_index_bytes,
    index_to_gpus,
    temp_memory_bytes,
)
from index_build.readers import open_corpus
from index_build.store_writer import write_store
from retriever.errors import GroundsearchError
from retriever.model import DEFAULT_MODEL, Encoder
from retriever.store import PassageStore

TOTAL = 136  # passages embedded: two full shards of 64 and a last one of 8
SHARD = 64
SHARDS = 3
MiB, GiB = 2**20, 2**30


# --- parse_gpus ------------------------------------------------------------------------------------------


def test_no_option_means_no_selection() -> None:
    assert parse_gpus(None, device_count=4) is None


@pytest.mark.parametrize("spec", ["all", "ALL", " all "])
def test_all_selects_every_visible_device(spec: str) -> None:
    selection = parse_gpus(spec, device_count=3)
    assert selection is not None and selection.ids == (0, 1, 2) and not selection.cpu_fallback
    assert selection.torch_devices() == ["cuda:0", "cuda:1", "cuda:2"]
    assert selection.note() == "--gpus all: embedding on 3 GPUs (cuda:0, cuda:1, cuda:2)"


def test_all_without_a_cuda_device_falls_back_to_the_cpu() -> None:
    selection = parse_gpus("all", device_count=0)
    assert selection is not None and selection.ids == () and selection.cpu_fallback
    assert selection.torch_devices() == ["cpu"]
    assert selection.note().startswith("--gpus all: no CUDA device is visible")
    assert selection.note().endswith("; embedding on the CPU") and "\n" not in selection.note()


@pytest.mark.skipif(torch.cuda.device_count() > 0, reason="this machine has a CUDA device")
def test_all_on_this_machine_embeds_on_the_cpu() -> None:
    """No count given: torch's own, which is zero here (and in CI)."""
    selection = parse_gpus("all")
    assert selection is not None and selection.visible == 0 and selection.torch_devices() == ["cpu"]


@pytest.mark.parametrize(
    ("spec", "count", "ids"),
    [("0,1", 2, (0, 1)), ("1", 2, (1,)), ("1,0", 2, (1, 0)), (" 0 , 3 ", 4, (0, 3)), ("0", 1, (0,))],
)
def test_ids_the_machine_has(spec: str, count: int, ids: tuple[int, ...]) -> None:
    selection = parse_gpus(spec, device_count=count)
    assert selection is not None and selection.ids == ids and selection.visible == count
    assert selection.torch_devices() == [f"cuda:{i}" for i in ids]


@pytest.mark.parametrize(
    ("spec", "count", "message"),
    [
        ("3", 2, "--gpus 3: this machine has 2 CUDA devices (0-1); use --gpus all, or ids from that range"),
        ("1", 1, "--gpus 1: this machine has 1 CUDA device (0); use --gpus all, or ids from that range"),
        ("0,3,5", 2, "--gpus 0,3,5: no CUDA device 3, 5: this machine has 2 CUDA devices (0-1);"),
        ("0", 0, "--gpus 0: this machine has no CUDA device"),
    ],
)
def test_ids_the_machine_lacks(spec: str, count: int, message: str) -> None:
    with pytest.raises(GpuSelectionError) as caught:
        parse_gpus(spec, device_count=count)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    if count == 0:
        assert str(caught.value).endswith("use --gpus all to fall back to the CPU, or leave --gpus out")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "an empty device id"),
        ("  ", "an empty device id"),
        ("0,,1", "an empty device id"),
        ("0,", "an empty device id"),
        ("a", "'a' is not a CUDA device id"),
        ("-1", "'-1' is not a CUDA device id"),
        ("+1", "'+1' is not a CUDA device id"),
        ("1.5", "'1.5' is not a CUDA device id"),
        ("\u0663", "is not a CUDA device id"),  # ARABIC-INDIC DIGIT THREE, which int() would accept
        ("cuda:0", "'cuda:0' is not a CUDA device id"),
        ("0,0", "device 0 is named twice"),
        ("1,01", "device 1 is named twice"),
    ],
)
def test_malformed_values_are_one_line_errors(spec: str, says: str) -> None:
    with pytest.raises(GpuSelectionError) as caught:
        parse_gpus(spec, device_count=8)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, GroundsearchError)  # the CLI prints it as one line, no traceback


def test_torch_devices() -> None:
    assert torch_devices([2, 0]) == ["cuda:2", "cuda:0"]
    assert torch_devices([]) == ["cpu"]


@pytest.mark.parametrize(("workers", "cores", "threads"), [(2, 2, 1), (3, 2, 1), (1, 16, 16), (4, 16, 4), (3, 16, 5)])
def test_worker_threads_share_the_cores(workers: int, cores: int, threads: int) -> None:
    assert worker_threads(workers, cores) == threads


# --- embedding on several devices --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, corpus_xml: Path) -> Path:
    path = tmp_path_factory.mktemp("store") / "store.sqlite"
    write_store(path, ((corpus_xml.name, document) for document in open_corpus(corpus_xml, workers=1)), 100)
    assert PassageStore(path).count() >= TOTAL
    return path


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(DEFAULT_MODEL, device="cpu")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, store: Path, encoder: Encoder) -> list[Path]:
    """The single-process shards: what every other path must reproduce."""
    shard_dir = tmp_path_factory.mktemp("reference") / "shards"
    return embed_passages(PassageStore(store), encoder, shard_dir, TOTAL, SHARD, 64, progress=False)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory, store: Path, encoder: Encoder, reference: list[Path]) -> Pooled:
    """A resumed run on two CPU workers: shard 0 is already there (copied from the reference), 1 and 2 are not."""
    shard_dir = tmp_path_factory.mktemp("pooled") / "shards"
    shard_dir.mkdir()
    shutil.copy2(reference[0], shard_path(shard_dir, 0))
    kept = _fingerprint(shard_path(shard_dir, 0))
    started = time.monotonic()
    with deadline(180):
        paths = embed_on_devices(store, encoder.identity, shard_dir, TOTAL, SHARD, None, ["cpu", "cpu"], False)
    print(f"two CPU workers, {SHARDS - 1} shards: {time.monotonic() - started:.1f}s")
    assert not multiprocessing.active_children()
    return Pooled(paths, kept)


@dataclass(frozen=True)
class Pooled:
    paths: list[Path]
    kept: tuple[int, int, bytes]  # shard 0 before the run


def test_two_workers_write_the_shards_one_process_writes(pooled: Pooled, reference: list[Path]) -> None:
    paths = pooled.paths
    assert [p.name for p in paths] == [p.name for p in reference] == [f"shard-{i:06d}.npy" for i in range(SHARDS)]
    identical = True
    for mine, theirs in zip(paths[1:], reference[1:], strict=True):
        got, want = np.load(mine), np.load(theirs)
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
        assert np.allclose(got, want, rtol=0, atol=1e-5)
        identical = identical and np.array_equal(got, want)
    assert [len(np.load(p)) for p in paths] == [64, 64, 8]
    print(f"two-worker shards bit-identical to single-process ones: {identical}")
    assert not list(paths[0].parent.glob(".*.tmp"))


def test_a_resumed_run_keeps_complete_shards(pooled: Pooled, store: Path, encoder: Encoder) -> None:
    assert _fingerprint(pooled.paths[0]) == pooled.kept  # not embedded again: same bytes, same mtime

    # Nothing left to do: no worker is started, and no file changes.
    everything = {p.name: _fingerprint(p) for p in pooled.paths}
    shard_dir = pooled.paths[0].parent
    started = time.monotonic()
    again = embed_on_devices(store, encoder.identity, shard_dir, TOTAL, SHARD, None, ["cpu", "cpu"], False)
    assert again == pooled.paths and time.monotonic() - started < 2
    assert {p.name: _fingerprint(p) for p in pooled.paths} == everything


def test_one_device_embeds_in_this_process(
    tmp_path: Path, store: Path, encoder: Encoder, reference: list[Path]
) -> None:
    shard_dir = tmp_path / "shards"
    shutil.copytree(reference[0].parent, shard_dir)
    shard_path(shard_dir, SHARDS - 1).unlink()
    kept = [_fingerprint(shard_path(shard_dir, n)) for n in range(SHARDS - 1)]
    paths = embed_on_devices(store, encoder.identity, shard_dir, TOTAL, SHARD, 64, ["cpu"], False)
    # Same process, same threads, same model: the very same floats.
    assert np.array_equal(np.load(paths[-1]), np.load(reference[-1]))
    assert [_fingerprint(p) for p in paths[:-1]] == kept


def test_a_shard_that_cannot_be_written_stops_the_pool_with_one_error(
    tmp_path: Path, store: Path, encoder: Encoder, reference: list[Path]
) -> None:
    """Shard 0 is kept; one worker takes shard 1, the other shard 2, whose rename fails."""
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    shutil.copy2(reference[0], shard_path(shard_dir, 0))
    kept = _fingerprint(shard_path(shard_dir, 0))
    shard_path(shard_dir, 2).mkdir()  # a directory where shard 2 goes
    with deadline(120), pytest.raises(EmbedPoolError) as caught:
        embed_on_devices(store, encoder.identity, shard_dir, TOTAL, SHARD, None, ["cpu", "cpu"], False)
    message = str(caught.value)
    shard = shard_path(shard_dir, 2)
    assert message.startswith(f"embedding on cpu: shard 2: embedding: cannot write {shard}: Is a directory (EISDIR)")
    assert "\n" not in message
    assert "Traceback" in caught.value.details
    assert not multiprocessing.active_children()
    assert _fingerprint(shard_path(shard_dir, 0)) == kept
    assert not list(shard_dir.glob(".*.tmp"))  # neither the failed shard's nor one a stopped worker was writing


def test_a_model_a_worker_cannot_load_is_one_error(tmp_path: Path, store: Path, encoder: Encoder) -> None:
    gone = replace(encoder.identity, folder=tmp_path / "no-such-model")
    with deadline(60), pytest.raises(EmbedPoolError) as caught:
        embed_on_devices(store, gone, tmp_path / "shards", TOTAL, SHARD, None, ["cpu", "cpu"], False)
    assert (
        str(caught.value) == f"embedding on cpu: {tmp_path / 'no-such-model'}: not a sentence-transformers model folder"
    )
    assert not multiprocessing.active_children()


def test_a_store_a_worker_cannot_read_is_one_error(tmp_path: Path, encoder: Encoder) -> None:
    bad = tmp_path / "store.sqlite"
    bad.write_text("not a database", encoding="utf-8")
    with deadline(60), pytest.raises(EmbedPoolError) as caught:
        embed_on_devices(bad, encoder.identity, tmp_path / "shards", TOTAL, SHARD, None, ["cpu", "cpu"], False)
    assert "unreadable passage store" in str(caught.value) and "\n" not in str(caught.value)
    assert not multiprocessing.active_children()


def test_a_killed_worker_is_reported_not_waited_for(tmp_path: Path, store: Path, encoder: Encoder) -> None:
    """As the kernel's out-of-memory killer would: SIGKILL, no last words."""

    def kill_a_worker(signum: int, frame: FrameType | None) -> None:
        workers = multiprocessing.active_children()
        assert workers, "no worker to kill"
        workers[0].kill()

    with (
        deadline(120),
        _after(1.5, kill_a_worker),
        pytest.raises(EmbedPoolError, match=r"^the embedding worker on cpu was killed by SIGKILL"),
    ):
        embed_on_devices(store, encoder.identity, tmp_path / "shards", TOTAL, SHARD, None, ["cpu", "cpu"], False)
    assert not multiprocessing.active_children()


def test_ctrl_c_stops_every_worker(tmp_path: Path, store: Path, encoder: Encoder) -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    with deadline(120), _after(1.5, interrupt), pytest.raises(KeyboardInterrupt):
        embed_on_devices(store, encoder.identity, tmp_path / "shards", TOTAL, SHARD, None, ["cpu", "cpu"], False)
    assert not multiprocessing.active_children()


def _fingerprint(path: Path) -> tuple[int, int, bytes]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size, path.read_bytes()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: a pool that waits forever on a dead worker is the bug these tests look for."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _after(seconds: float, action: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    """Run `action` once, `seconds` from now, in the main thread (SIGUSR1 from a timer: SIGALRM is the deadline's)."""
    import threading

    previous = signal.signal(signal.SIGUSR1, action)
    timer = threading.Timer(seconds, signal.raise_signal, (signal.SIGUSR1,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, previous)


# --- FAISS on GPUs: what can be checked without one ----------------------------------------------------------


@pytest.mark.parametrize(
    ("free", "index", "batch", "expected"),
    [
        # 80 GiB free, a 20 GiB index: 58.75 GiB spare, half of it far above faiss's 1.5 GiB ceiling.
        (80 * GiB, 20 * GiB, 1 * GiB, TEMP_MEMORY_CAP),
        # 8192 - 6144 - 256 - 256 (reserve) = 1536 MiB spare: half of it.
        (8 * GiB, 6 * GiB, 256 * MiB, 768 * MiB),
        # 4096 - 3072 - 256 = 768 MiB spare: half is 384 MiB, raised to the 512 MiB floor.
        (4 * GiB, 3 * GiB, 0, TEMP_MEMORY_FLOOR),
        # Exactly the floor spare: 4096 - 3328 - 256 = 512 MiB.
        (4 * GiB, 3328 * MiB, 0, TEMP_MEMORY_FLOOR),
    ],
)
def test_temp_memory_bytes(free: int, index: int, batch: int, expected: int) -> None:
    assert temp_memory_bytes(free, index, batch) == expected


def test_temp_memory_bytes_refuses_a_gpu_without_room() -> None:
    # 4096 - 3584 - 256 = 256 MiB spare, under the 512 MiB floor.
    with pytest.raises(FaissGpuError, match=r"^4\.00 GiB free, but the index needs 3\.50 GiB"):
        temp_memory_bytes(4 * GiB, 3584 * MiB)
    with pytest.raises(ValueError):
        temp_memory_bytes(-1, 0)
    with pytest.raises(ValueError):
        temp_memory_bytes(GiB, 0, floor=2 * GiB, cap=GiB)


@pytest.mark.parametrize(
    ("k", "nprobe", "gpu"),
    [
        (10, None, True),
        (10, 64, True),
        (GPU_MAX_SELECTION_K, GPU_MAX_SELECTION_K, True),
        (2049, None, False),
        (10, 2049, False),
        (0, None, False),
        (10, 0, False),
    ],
)
def test_gpu_can_search(k: int, nprobe: int | None, gpu: bool) -> None:
    assert gpu_can_search(k, nprobe) is gpu


def test_gpu_index_bytes() -> None:
    ivf = faiss.index_factory(384, "IVF16,Flat", faiss.METRIC_INNER_PRODUCT)
    # centroids 16 * 384 * 4 + 1000 * (1536 + 8) + padding 16 * 31 * 1536
    assert gpu_index_bytes(ivf, 1000) == 24_576 + 1_544_000 + 761_856
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(384))
    assert gpu_index_bytes(flat, 1000) == 1000 * 1536  # the ID map's ids stay on the host


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="this faiss has GPU support")
def test_index_to_gpus_without_gpu_faiss_is_a_clear_error() -> None:
    """faiss-cpu (CI's) has no StandardGpuResources: the module imported, and refuses before touching one."""
    index = faiss.index_factory(8, "IVF4,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(np.random.default_rng(0).standard_normal((256, 8)).astype(np.float32))
    with pytest.raises(FaissGpuError, match="no GPU support"):
        index_to_gpus(index, [0], shard=True)


def test_index_to_gpus_refuses_bad_arguments_first() -> None:
    untrained = faiss.index_factory(8, "IVF4,Flat", faiss.METRIC_INNER_PRODUCT)
    with pytest.raises(ValueError, match="at least one GPU"):
        index_to_gpus(untrained, [], shard=False)
    with pytest.raises(ValueError, match="must differ"):
        index_to_gpus(untrained, [0, 0], shard=False)
    with pytest.raises(ValueError, match="train the index before sharding"):
        index_to_gpus(untrained, [0, 1], shard=True)
