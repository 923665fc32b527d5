"""Embed the missing shards on several devices at once (`groundsearch build --gpus 0,1`): one process per device.

Each worker process loads the model once on its device and takes shard after shard from a shared queue, so a
fast GPU simply does more shards than a slow one. It writes each shard with index_build.embed.embed_shard,
the single-process code, so the file is the one `embed_passages` would write (same texts, same groups, same
atomic rename) and a build resumes the same way whoever wrote a shard: a complete shard is kept.

Workers are spawned, never forked: CUDA cannot be used in a forked child of a process that touched it, and
torch's OpenMP thread pool is not fork-safe either. The parent hands out shards a few at a time, counts the
finished ones for the progress bar, and watches the workers: the first failure, or a worker that dies (out
of memory, killed), stops the pool and comes back as one EmbedPoolError. Ctrl-C or any other exception in
the parent stops every worker before it propagates; a SIGTERMed worker removes its half-written shard. A
worker whose parent was killed outright finishes (atomically) the shard it is on, then leaves.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from tqdm import tqdm

from index_build.embed import Backend, InProcess, Task, embed_shard, embed_shards, weights_problem
from retriever.errors import GroundsearchError
from retriever.model import Encoder, ModelIdentity, resolve_model_dir
from retriever.store import PassageStore

# Shards queued per worker beyond the one it is embedding: enough that no worker waits for the parent, few
# enough that a failure leaves little queued work to discard.
PREFETCH = 2
POLL_SECONDS = 0.5  # how often the parent checks that its workers are alive while it waits for results
STOP_SECONDS = 10.0  # how long a worker has to leave after SIGTERM before it is killed


class EmbedPoolError(GroundsearchError):
    """An embedding worker process failed or died; the shards finished before it are kept for a resume."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details  # the worker's traceback, where there is one, for a bug report


def embed_on_devices(
    store_path: Path,
    model: ModelIdentity,
    shard_dir: Path,
    total: int,
    shard_size: int,
    batch_size: int | None,
    devices: Sequence[str],
    progress: bool = True,
) -> list[Path]:
    """Make sure every shard exists, embedding the missing ones on `devices`; return their paths in id order.

    `model` is the identity of the build's own encoder (Encoder.identity): each worker loads the folder it
    was resolved to and must find the same weights, so shards from different models cannot be mixed, and the
    dimension tells complete shards without loading anything. `batch_size` None means each device's default.
    With one device the shards are embedded in this process.
    """
    return embed_shards(
        pool_backend(store_path, model, shard_dir, batch_size, devices),
        shard_dir.resolve(),
        total,
        shard_size,
        model.dimension,
        progress,
    )


def pool_backend(
    store_path: Path, model: ModelIdentity, shard_dir: Path, batch_size: int | None, devices: Sequence[str]
) -> Backend:
    """The back-end for `devices`: a `DevicePool`, or `InProcess` on the only one."""
    if not devices:
        raise ValueError("embed_on_devices needs at least one device")
    if len(devices) == 1:
        store = PassageStore(store_path)
        return InProcess(store, lambda: _load_encoder(model, devices[0]), shard_dir.resolve(), batch_size)
    return DevicePool(store_path.resolve(), model, shard_dir.resolve(), batch_size, tuple(devices))


@dataclass(frozen=True)
class DevicePool:
    """The device-pool back-end: one spawned worker process per device, each taking tasks from a shared queue."""

    store_path: Path
    model: ModelIdentity
    shard_dir: Path
    batch_size: int | None
    devices: tuple[str, ...]

    def run(self, tasks: list[Task], bar: tqdm) -> None:
        _run_pool(self.store_path, self.model, self.shard_dir, tasks, self.batch_size, list(self.devices), bar)

    def lost(self, shard_dir: Path, missing: list[Task]) -> GroundsearchError:
        return EmbedPoolError(f"{len(missing)} shards reported written are not complete in {shard_dir}")


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of `workers` processes: the cores shared out, at least one each.

    Every torch process starts one thread per core; N of them on the same cores spend their time switching.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _run_pool(
    store_path: Path,
    model: ModelIdentity,
    shard_dir: Path,
    todo: list[tuple[int, int, int]],
    batch_size: int | None,
    devices: list[str],
    bar: tqdm,
) -> None:
    devices = devices[: len(todo)]  # no model is loaded where no shard is left for it
    threads = worker_threads(len(devices))
    context = multiprocessing.get_context("spawn")
    tasks: Any = context.Queue()
    results: Any = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(slot, device, threads, str(store_path), model, str(shard_dir), batch_size, tasks, results),
            name=f"groundsearch-embed-{device}",
            daemon=True,  # never outlives the build, even one that exits without reaching the finally below
        )
        for slot, device in enumerate(devices)
    ]
    pending = deque(todo)
    finished = False
    bar.set_description(f"embedding on {len(devices)} devices")
    try:
        _start(workers)
        for _ in range(min(len(pending), PREFETCH * len(workers))):
            tasks.put(pending.popleft())
        if not pending:
            _stop_when_idle(tasks, len(workers))
        remaining = len(todo)
        while remaining:
            message = _next_message(results, workers, devices)
            kind, slot = message[0], message[1]
            if kind == "ready":
                _check_ready(devices[slot], model, message[2], message[3])
            elif kind == "done":
                bar.update(message[2])
                remaining -= 1
                if pending:
                    tasks.put(pending.popleft())
                    if not pending:
                        _stop_when_idle(tasks, len(workers))
            else:
                raise EmbedPoolError(f"embedding on {devices[slot]}: {message[2]}", message[3])
        finished = True
    finally:
        _shut_down(workers, tasks, results, graceful=finished)


def _start(workers: Sequence[BaseProcess]) -> None:
    """Start the workers with SIGINT ignored, which a spawned interpreter keeps: Ctrl-C reaches the whole
    process group, and a worker still importing torch would otherwise print a KeyboardInterrupt traceback."""
    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for worker in workers:
            worker.start()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _stop_when_idle(tasks: Any, workers: int) -> None:
    for _ in range(workers):
        tasks.put(None)  # one stop sign each, queued behind the last shards


def _next_message(results: Any, workers: Sequence[BaseProcess], devices: list[str]) -> tuple[Any, ...]:
    """The next worker message; raises once a worker has exited without saying why (killed, out of memory)."""
    while True:
        try:
            message: tuple[Any, ...] = results.get(timeout=POLL_SECONDS)
            return message
        except queue.Empty:
            pass
        # A worker leaves with status 0 on its stop sign while others finish their last shards; any other
        # status, or every worker gone with shards unreported, means one died without saying why.
        ended = [(d, w) for d, w in zip(devices, workers, strict=True) if w.exitcode is not None]
        died = [(d, w) for d, w in ended if w.exitcode != 0]
        if died or len(ended) == len(workers):
            try:  # its last words may have arrived in the meantime
                return tuple(results.get(timeout=POLL_SECONDS))
            except queue.Empty:
                device, worker = (died or ended)[0]
                raise EmbedPoolError(f"the embedding worker on {device} {_how_it_ended(worker)}") from None


def _how_it_ended(worker: BaseProcess) -> str:
    code = worker.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}; the shards written so far are kept, run the build again to resume"
    return f"exited early with status {code}; the shards written so far are kept, run the build again to resume"


def _check_ready(device: str, model: ModelIdentity, weights_sha256: str, dimension: int) -> None:
    problem = weights_problem(model, weights_sha256, dimension)
    if problem is not None:
        raise EmbedPoolError(f"the worker on {device} {problem}")


def _shut_down(workers: Sequence[BaseProcess], tasks: Any, results: Any, graceful: bool) -> None:
    """Let finished workers leave on their stop signs; otherwise SIGTERM them, and SIGKILL what stays."""
    started = [worker for worker in workers if worker.pid is not None]
    if not graceful:
        for worker in started:
            if worker.is_alive():
                worker.terminate()
    for worker in started:
        worker.join(STOP_SECONDS)
        if worker.is_alive():
            worker.kill()
            worker.join()
    for channel in (tasks, results):
        channel.cancel_join_thread()  # unread items must not keep this process from exiting
        channel.close()


def _worker(
    slot: int,
    device: str,
    threads: int,
    store_path: str,
    model: ModelIdentity,
    shard_dir: str,
    batch_size: int | None,
    tasks: Any,
    results: Any,
) -> None:
    """Body of a worker process: report ready, then embed shards until a stop sign; report any failure."""
    # Ctrl-C reaches the whole process group; the parent alone decides, and stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SystemExit unwinds through atomic_path, which removes the half-written shard.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    number: int | None = None
    try:
        # The cheap checks first: a bad store or model folder fails in a second, not after torch's imports.
        store = PassageStore(Path(store_path))
        resolve_model_dir(str(model.folder))
        import torch

        torch.set_num_threads(threads)
        if device.startswith("cuda"):
            # Without this, CUDA makes its context on GPU 0 too, costing GPU 0 memory for every worker.
            torch.cuda.set_device(device)
        encoder = _load_encoder(model, device)
        results.put(("ready", slot, encoder.identity.weights_sha256, encoder.dimension))
        while (task := _next_task(tasks)) is not None:
            number, first, last = task
            rows = embed_shard(store, encoder, Path(shard_dir), number, first, last, batch_size)
            results.put(("done", slot, rows))
            number = None
    except Exception as exc:
        where = f"shard {number}: " if number is not None else ""
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        text = detail if isinstance(exc, GroundsearchError) else f"{type(exc).__name__}: {detail}".rstrip(": ")
        results.put(("failed", slot, where + text, traceback.format_exc()))
    finally:
        # From here the process is only leaving; a SIGTERM now must end it quietly, not raise in its atexit code.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _next_task(tasks: Any) -> tuple[int, int, int] | None:
    """The next shard to embed, or None on a stop sign or once the parent is gone (killed with SIGKILL, say):
    an orphaned worker must not wait forever holding a GPU, nor embed for nobody."""
    parent = multiprocessing.parent_process()
    while True:
        try:
            task: tuple[int, int, int] | None = tasks.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return None
            continue
        if parent is not None and not parent.is_alive():
            return None
        return task


def _load_encoder(model: ModelIdentity, device: str) -> Encoder:
    """The build's model from the folder the build resolved, so no worker goes to the hub for it again."""
    return Encoder(str(model.folder), device=device)


__all__ = ["DevicePool", "EmbedPoolError", "embed_on_devices", "pool_backend", "worker_threads"]
