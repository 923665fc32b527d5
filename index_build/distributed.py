"""Embed on a Ray cluster (`groundsearch build --ray ADDRESS`): workers write the shards embed_passages would.

Only embedding is spread out, because it is nearly all of a build's time; reading is one sequential bz2
stream, and adding 21 M vectors to FAISS takes minutes on one machine. The driver reads the corpus into the
staging store as usual, Ray actors fill the staging shard directory, and the driver's normal FAISS stage
builds from it. So a distributed build makes the same bundle as a single-process one and resumes the same
way: a shard is skipped when its file is complete, whoever wrote it, so a build started one way can be
finished the other.

Workers read the store and write shards straight to the staging directory, which must therefore be on a
filesystem every node mounts at the same path. A token file the driver writes there is read back by every
worker before any work is handed out, which tells "the same directory" from "a directory of the same name".
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from index_build.embed import Task, embed_shard, embed_shards, shard_path, weights_problem
from retriever.bundle import package_version
from retriever.errors import GroundsearchError
from retriever.model import Encoder
from retriever.store import PassageStore

LOCAL = "local"  # `--ray local`: start a one-machine cluster in this process instead of joining one
# A CPU actor per this many cores: one torch process stops scaling well past a few threads, and a model per
# actor is only 90 MB. GPU actors take one GPU each.
CPU_THREADS_PER_ACTOR = 8
# The object store holds nothing but small return values here (shards go through the filesystem), so a
# local cluster asks for Ray's minimum-ish instead of its default 30% of memory.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
INSTALL_HINT = "pip install groundsearch[ray]"


class DistributedError(GroundsearchError):
    """A distributed build cannot run: Ray is missing, the cluster is unreachable, or a worker cannot help."""


def check_ray(address: str) -> None:
    """Fail before the read stage, which can take hours, rather than when embedding starts."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise DistributedError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    problem = _unreachable(address)
    if problem is not None:
        raise DistributedError(f"cannot connect to the Ray cluster at {address!r}: {problem}")


def _unreachable(address: str) -> str | None:
    """Why nothing answers at HOST:PORT, or None; ray.init retries such an address for about 12 minutes.

    Other forms ("local", "auto", an address found in RAY_ADDRESS) are left to Ray.
    """
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            return None
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or type(exc).__name__}); is its Ray head running?"


def embed_on_ray(
    address: str,
    store_path: Path,
    encoder: Encoder,
    shard_dir: Path,
    total: int,
    shard_size: int,
    batch_size: int | None,
    device: str | None,
    progress: bool = True,
) -> list[Path]:
    """Make sure every shard exists, embedding the missing ones on the cluster; return their paths in id order.

    `encoder` is the driver's copy of the model: the workers must load weights with the same sha256.
    """
    check_ray(address)
    backend = RayCluster(address, store_path.resolve(), encoder, shard_dir.resolve(), batch_size, device)
    return embed_shards(backend, shard_dir.resolve(), total, shard_size, encoder.dimension, progress)


@dataclass(frozen=True)
class RayCluster:
    """The Ray back-end: one `ShardEmbedder` actor per GPU (or per few cores), fed tasks by an ActorPool. The
    cluster is joined only when there are tasks: a resume that only lacks the FAISS stage needs none."""

    address: str
    store_path: Path
    encoder: Encoder
    shard_dir: Path
    batch_size: int | None
    device: str | None

    def run(self, tasks: list[Task], bar: tqdm) -> None:
        with _connected(self.address):
            _embed_todo(tasks, self.store_path, self.encoder, self.shard_dir, self.batch_size, self.device, bar)

    def lost(self, shard_dir: Path, missing: list[Task]) -> GroundsearchError:
        return DistributedError(
            f"the Ray workers reported {len(missing)} shards written that the driver cannot read in {shard_dir} "
            f"(first: {shard_path(shard_dir, missing[0][0]).name}); --out must be on a filesystem every node shares"
        )


def _embed_todo(
    todo: list[Task],
    store_path: Path,
    encoder: Encoder,
    shard_dir: Path,
    batch_size: int | None,
    device: str | None,
    bar: tqdm,
) -> None:
    import ray
    from ray.util import ActorPool

    actor_class = ray.remote(ShardEmbedder)
    # A local folder goes by its absolute path (workers have another working directory); the default model and
    # hub names by name, each worker finding its own copy. Either way check() compares the weights' sha256.
    name = encoder.identity.name
    model = str(encoder.identity.folder) if Path(name).expanduser().is_dir() else name
    slots = actor_slots(ray.nodes(), device)[: len(todo)]  # no model loaded where no shard is left for it
    actors: list[Any] = [  # ray's typing sees ShardEmbedder, not the handle with .remote methods
        actor_class.options(**resources).remote(str(store_path), str(shard_dir), model, on, threads, batch_size)
        for resources, on, threads in slots
    ]
    token = secrets.token_hex(16)
    probe = shard_dir / f".ray-probe-{token}"
    probe.write_text(token, encoding="utf-8")
    try:
        workers = _get([actor.check.remote(str(probe), token) for actor in actors])
    finally:
        probe.unlink(missing_ok=True)
    _check_workers(workers, encoder)
    bar.set_description(f"embedding on {len(actors)} Ray worker{'s' if len(actors) > 1 else ''}")
    pool = ActorPool(actors)
    results = pool.map_unordered(lambda actor, shard: actor.embed.remote(*shard), todo)
    while True:
        try:
            rows = _get(results)
        except StopIteration:
            break
        bar.update(rows)


def actor_slots(nodes: list[dict[str, Any]], device: str | None) -> list[tuple[dict[str, Any], str, int | None]]:
    """(Ray resources, torch device, torch threads) for each actor to start, from `ray.nodes()`.

    Unless --device says otherwise, a cluster with GPUs embeds on its GPUs only: one GPU outruns dozens of
    cores, and mixing both would leave the GPUs waiting on the slowest CPU shard at the end.
    """
    alive = [n for n in nodes if n.get("Alive")]
    gpus = sum(int(n["Resources"].get("GPU", 0)) for n in alive)
    if device is None and gpus or device is not None and device.startswith("cuda"):
        if not gpus:
            raise DistributedError(f"--device {device} but the Ray cluster has no GPU")
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's own GPU, so it is always "cuda" inside the actor.
        return [({"num_gpus": 1, "num_cpus": 1}, "cuda", None)] * gpus
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    slots: list[tuple[dict[str, Any], str, int | None]] = []
    for node in alive:
        cpus = int(node["Resources"].get("CPU", 0))
        if cpus < 1:  # e.g. a head started with --num-cpus=0 to keep work off it
            continue
        actors = max(1, cpus // CPU_THREADS_PER_ACTOR)
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        threads = cpus // actors
        slots += [({"num_cpus": threads, "scheduling_strategy": strategy}, device or "cpu", threads)] * actors
    if not slots:
        raise DistributedError("the Ray cluster has no CPU or GPU to embed on")
    return slots


class ShardEmbedder:
    """A Ray actor (wrapped with ray.remote at run time, so importing this module needs no Ray).

    It loads the model once and embeds shard after shard with index_build.embed.embed_shard, the
    single-process code, so the texts, their template, batching and normalisation are the same.
    """

    def __init__(
        self, store_path: str, shard_dir: str, model: str, device: str, threads: int | None, batch_size: int | None
    ) -> None:
        self._store_path = Path(store_path)
        self._shard_dir = Path(shard_dir)
        self._model = model
        self._device = device
        self._threads = threads
        self._batch_size = batch_size
        self._encoder: Encoder | None = None
        self._store: PassageStore | None = None

    def check(self, probe: str, token: str) -> dict[str, str]:
        """Load the model here, not in __init__, so a failure comes back as this call's exception."""
        where = _where()
        problem = visibility_problem(Path(probe), token)
        if problem is not None:
            raise DistributedError(
                f"the Ray worker on {where} {problem}; --out must be on a filesystem every node mounts at the same path"
            )
        if self._threads:
            import torch

            torch.set_num_threads(self._threads)
        self._encoder = Encoder(self._model, device=self._device)
        self._store = PassageStore(self._store_path)
        return {
            "where": where,
            "device": self._encoder.device,
            "weights_sha256": self._encoder.identity.weights_sha256,
            "dimension": str(self._encoder.dimension),
            "version": package_version(),
        }

    def embed(self, number: int, first: int, last: int) -> int:
        assert self._encoder is not None and self._store is not None, "check() first"
        return embed_shard(self._store, self._encoder, self._shard_dir, number, first, last, self._batch_size)


def visibility_problem(probe: Path, token: str) -> str | None:
    """Why this process does not see the driver's staging directory, or None when it does."""
    try:
        seen = probe.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"cannot see the staging directory {probe.parent}"
    except OSError as exc:
        return f"cannot read the staging directory {probe.parent} ({exc.strerror or exc})"
    if seen != token:
        return f"sees another {probe.parent} than the driver's (the token file differs)"
    return None


def _check_workers(workers: list[dict[str, str]], encoder: Encoder) -> None:
    mine = package_version()
    for worker in workers:
        problem = weights_problem(encoder.identity, worker["weights_sha256"], int(worker["dimension"]))
        if problem is not None:
            raise DistributedError(f"the Ray worker on {worker['where']} {problem}")
        if worker["version"] != mine:
            raise DistributedError(
                f"the Ray worker on {worker['where']} runs groundsearch {worker['version']}, the driver {mine}; "
                "install the same version on every node"
            )


@contextmanager
def _connected(address: str) -> Iterator[None]:
    """Start or join a cluster for the embedding stage only, and leave it (stopping a local one) afterwards."""
    import ray

    if ray.is_initialized():  # a library caller's own connection: use it and leave it open
        yield
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address == LOCAL:
            ray.init(
                address="local",  # a new cluster even where `ray start` or RAY_ADDRESS points at another one
                num_cpus=len(os.sched_getaffinity(0)),
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
                **quiet,
            )
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        ray.shutdown()
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DistributedError(f"cannot connect to the Ray cluster at {address!r}: {detail}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _get(refs: Any) -> Any:
    """ray.get, or next() of an ActorPool iterator, with a worker's failure turned into one clear line."""
    import ray

    try:
        return ray.get(refs) if isinstance(refs, list) else next(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, GroundsearchError):
            raise DistributedError(str(cause)) from None
        raise DistributedError(f"a Ray worker failed: {type(cause).__name__}: {_first_line(cause)}") from None
    except ray.exceptions.RayError as exc:  # a worker died (killed, out of memory) or its node was lost
        raise DistributedError(f"a Ray worker was lost: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _where() -> str:
    import ray

    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


__all__ = ["LOCAL", "DistributedError", "RayCluster", "actor_slots", "check_ray", "embed_on_ray", "visibility_problem"]
