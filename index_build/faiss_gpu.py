"""Helpers for FAISS on one or several GPUs: scratch memory per GPU, k/nprobe limits, and cloning an index out.

Importing this module touches no GPU symbol: faiss-cpu (what CI installs) has no StandardGpuResources, so
every GPU call sits behind `faiss.get_num_gpus() > 0`, and the sizing rules are plain functions over byte
counts that tests check by hand.

Facts from the faiss sources these rely on (faiss/gpu/StandardGpuResources.cpp, faiss/gpu/impl/IndexUtils.cu,
faiss/gpu/utils/DeviceDefs.cuh, faiss >= 1.8):

- `StandardGpuResources.setTempMemory(n)` sets a per-GPU stack of scratch memory, allocated up front, for
  search tiles, k-selection buffers and add batches. Anything above 1.5 GiB is silently clamped to 1.5 GiB;
  faiss's own default on a GPU of <= 4 GiB is 512 MiB. A request that does not fit in the stack is not an
  error: it falls back to a cudaMalloc/cudaFree per call, which synchronises the device and is slow.
- GPU k-selection is compiled for k <= GPU_MAX_SELECTION_K = 2048, and IVF's nprobe uses the same selection:
  a search with k or nprobe above 2048 throws on a GPU index (cuVS-backed indexes allow more; this code does
  not rely on that), while the CPU index has no such limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faiss

from retriever.errors import GroundsearchError
from retriever.faiss_io import inner_index, ivf_of

MiB = 2**20
GPU_MAX_SELECTION_K = 2048
# faiss clamps setTempMemory to this (kMaxTempMem): asking for more is silently ignored, so a larger cap here
# would only make the numbers this module reports untrue.
TEMP_MEMORY_CAP = 1536 * MiB
# faiss's own choice for its smallest GPUs (k4GiBTempMem). Below it, the tiles of a flat or IVF search over a
# batch of queries no longer fit, and every call pays a synchronising cudaMalloc: better to refuse the GPU.
TEMP_MEMORY_FLOOR = 512 * MiB
# Device memory neither the index nor the scratch stack accounts for: cuBLAS workspaces, streams, the CUDA
# allocator's rounding, and whatever another process allocates meanwhile. mem_get_info already excludes the
# CUDA context itself.
RESERVE_BYTES = 256 * MiB
# GPU IVF lists are stored interleaved in blocks of 32 vectors (kWarpSize), so each list wastes up to 31 slots.
_IVF_BLOCK = 32
_ID_BYTES = 8  # faiss idx_t, kept on the GPU for each IVF entry


class FaissGpuError(GroundsearchError):
    """FAISS cannot use the GPUs asked for: faiss without GPU support, or a GPU without room for the index."""


def temp_memory_bytes(
    free_bytes: int,
    index_bytes: int,
    batch_bytes: int = 0,
    *,
    reserve: int = RESERVE_BYTES,
    floor: int = TEMP_MEMORY_FLOOR,
    cap: int = TEMP_MEMORY_CAP,
) -> int:
    """Scratch memory to give one GPU's StandardGpuResources, from what is free there before the index arrives.

    `index_bytes` is what this GPU's part of the index will hold once filled and `batch_bytes` one add (or
    query) batch copied to it. Of what is left after those and `reserve`, half goes to scratch: the other half
    is slack for IVF lists, which grow by reallocation (old and new buffer exist at once while a list is
    copied), and for the estimate being an estimate. The result is clamped to [floor, cap]; raises
    FaissGpuError when even `floor` does not fit, so a build fails before hours of adding, not during them.
    """
    if min(free_bytes, index_bytes, batch_bytes, reserve) < 0 or not 0 < floor <= cap:
        raise ValueError("byte counts must not be negative, and 0 < floor <= cap")
    spare = free_bytes - index_bytes - batch_bytes - reserve
    if spare < floor:
        raise FaissGpuError(
            f"{_gib(free_bytes)} GiB free, but the index needs {_gib(index_bytes)} GiB, an add batch "
            f"{_gib(batch_bytes)} GiB, and FAISS at least {_gib(floor + reserve)} GiB of working memory"
        )
    return min(cap, max(floor, spare // 2))


def gpu_index_bytes(index: Any, vectors: int) -> int:
    """Device memory one full copy of `index` takes once it holds `vectors` vectors (an upper estimate).

    IVF: the coarse centroids, each vector's code and 8-byte id, and each list padded to a block of 32.
    Other indexes (flat): the codes only; an ID map's ids stay in host memory.
    """
    if vectors < 0:
        raise ValueError(f"vectors must not be negative, got {vectors}")
    ivf = ivf_of(index)
    if ivf is not None:
        centroids = ivf.nlist * ivf.d * 4
        padding = ivf.nlist * (_IVF_BLOCK - 1) * ivf.code_size
        return centroids + vectors * (ivf.code_size + _ID_BYTES) + padding
    inner = inner_index(index, through_transforms=True)
    code_size = int(getattr(inner, "code_size", 0)) or inner.d * 4
    return vectors * code_size


def gpu_can_search(k: int, nprobe: int | None = None) -> bool:
    """Whether a GPU index can answer a search for `k` neighbours probing `nprobe` IVF lists (None: not IVF).

    False means: search the CPU copy of the index instead, as faiss would otherwise throw.
    """
    return 0 < k <= GPU_MAX_SELECTION_K and (nprobe is None or 0 < nprobe <= GPU_MAX_SELECTION_K)


def faiss_gpu_count() -> int:
    """GPUs the installed faiss sees: 0 with faiss-cpu, whatever torch sees."""
    return int(faiss.get_num_gpus())


def faiss_has_gpus() -> bool:
    """Whether the installed faiss was built with GPU support and sees at least one GPU."""
    return faiss_gpu_count() > 0


def index_to_gpus(
    index: Any, gpus: Sequence[int], shard: bool, vectors: int | None = None, batch_bytes: int = 0
) -> Any:
    """Copy a CPU index onto `gpus`: whole on each (shard=False, to train or search) or split (shard=True, to add).

    Sharding splits every added batch across the GPUs, so adding runs on all of them and each holds only its
    part of the vectors; faiss.index_gpu_to_cpu merges the parts back into one CPU index. A sharded index must
    be trained already: each shard would otherwise train its own coarse quantizer, and shards with different
    quantizers merge into a wrong index. Vectors stay float32 (useFloat16 off): half precision would change
    the scores the build's recall tuning measures.

    `vectors` is how many the index will hold when filled (default: what it holds now) and `batch_bytes` the
    size of one add batch; they size each GPU's scratch memory (temp_memory_bytes) from its free memory.
    """
    if not gpus:
        raise ValueError("index_to_gpus needs at least one GPU id")
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"GPU ids must differ, got {list(gpus)}")
    if shard and not index.is_trained:
        raise ValueError("train the index before sharding it over GPUs: each shard would train its own quantizer")
    if not faiss_has_gpus():
        raise FaissGpuError(
            "the installed faiss has no GPU support or sees no GPU; install faiss-gpu "
            "(pip install groundsearch[gpu]) or build the index on the CPU"
        )
    filled = index.ntotal if vectors is None else vectors
    per_gpu_vectors = -(-filled // len(gpus)) if shard else filled
    # A shard holds its part of the lists but a whole copy of the coarse quantizer, so the estimate is per part.
    index_bytes = gpu_index_bytes(index, per_gpu_vectors)
    batch_per_gpu = -(-batch_bytes // len(gpus)) if shard else batch_bytes
    resources = []
    for device, free in zip(gpus, free_memory(gpus), strict=True):
        try:
            temp = temp_memory_bytes(free, index_bytes, batch_per_gpu)
        except FaissGpuError as exc:
            hint = "shard over more GPUs (--gpus)" if shard else "use a GPU with more free memory"
            raise FaissGpuError(f"GPU {device}: {exc}; {hint} or build the index on the CPU") from None
        res = faiss.StandardGpuResources()
        res.setTempMemory(temp)
        resources.append(res)
    options = faiss.GpuMultipleClonerOptions()
    options.shard = shard
    options.useFloat16 = False
    gpu_index: Any = faiss.index_cpu_to_gpu_multiple_py(resources, index, options, list(gpus))
    # Each GPU index holds its resources through a shared pointer; the Python objects are kept as well so
    # that their settings outlive this function whatever the faiss build's wrapper does.
    gpu_index.referenced_objects = resources
    return gpu_index


def free_memory(gpus: Sequence[int]) -> list[int]:
    """Free bytes on each CUDA device, after torch hands back the cached blocks FAISS could not use."""
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()  # torch's cache is invisible to cudaMalloc, so FAISS would count it as taken
    return [int(torch.cuda.mem_get_info(device)[0]) for device in gpus]


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


__all__ = [
    "GPU_MAX_SELECTION_K",
    "RESERVE_BYTES",
    "TEMP_MEMORY_CAP",
    "TEMP_MEMORY_FLOOR",
    "FaissGpuError",
    "faiss_gpu_count",
    "faiss_has_gpus",
    "free_memory",
    "gpu_can_search",
    "gpu_index_bytes",
    "index_to_gpus",
    "temp_memory_bytes",
]
