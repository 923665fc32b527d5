"""What a build is asked for: `BuildOptions` decide what the index contains, `RunOptions` only how fast it is made."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from index_build.distributed import check_ray
from index_build.faiss_index import ADD_BLOCK_VECTORS
from index_build.faults import BuildError
from index_build.store_writer import CHECKPOINT_PASSAGES
from index_build.tuning import TARGET_RECALL, TUNING_QUERIES, check_target
from retriever.model import DEFAULT_MODEL


@dataclass(frozen=True)
class BuildOptions:
    """Options that decide what the index contains; a resumed build must use the same ones."""

    format: str | None = None
    base_url: str | None = None
    passage_words: int = 100
    model: str = DEFAULT_MODEL
    index_factory: str | None = None
    shard_size: int = 8192
    skip_errors: bool = False
    lexical: bool = True
    # Approximate indexes only: the default nprobe/efSearch is the smallest whose recall@10 against exact
    # search reaches target_recall, measured on tuning_queries of the corpus's own passages (index_build.tuning).
    target_recall: float = TARGET_RECALL
    tuning_queries: int = TUNING_QUERIES
    # Bytes the FAISS index may take (index_build.budget chooses the factory); exclusive with index_factory.
    memory_budget: int | None = None
    # Keep a float16 copy of the vectors in the bundle (2 bytes per dimension per passage) so that a lossy
    # index's candidates are re-ranked by exact inner product at query time (retriever.rescore).
    rescore: bool = False
    # Export the query encoder as an ONNX graph into the bundle (index_build.onnx_export), so that queries need
    # no torch; off, or for a model it cannot export, queries load the sentence-transformers model.
    onnx: bool = True
    # Keep every vector as float32 with its reuse key (vectors.f32.npy, vectors.keys.npy: 4 bytes per dimension
    # plus 32 per passage), so that a build of a later dump can take them (`--reuse`, index_build.reuse).
    keep_vectors: bool = True

    def check(self) -> None:
        """Raise BuildError for an option no build can use, before anything is read."""
        if self.passage_words < 1:
            raise BuildError(f"--passage-words must be at least 1, got {self.passage_words}")
        if self.shard_size < 1:
            raise BuildError(f"--shard-size must be at least 1, got {self.shard_size}")
        if self.tuning_queries < 1:
            raise BuildError(f"tuning_queries must be at least 1, got {self.tuning_queries}")
        check_target(self.target_recall)
        if self.memory_budget is not None and self.index_factory is not None:
            raise BuildError(
                "give --index or --memory-budget, not both: --index names the factory, the budget chooses one"
            )
        if self.memory_budget is not None and self.memory_budget < 1:
            raise BuildError(f"--memory-budget must be positive, got {self.memory_budget}")


@dataclass(frozen=True)
class RunOptions:
    """Options that change how fast a build runs, never what it produces."""

    workers: int | None = None
    batch_size: int | None = None
    device: str | None = None
    progress: bool = True
    use_gpu_faiss: bool | None = None  # None: FAISS on every GPU the installed faiss sees (--gpus narrows it)
    # `--gpus all|0,1`: embed on these CUDA devices at once, one worker process each (index_build.embed_pool),
    # and train/add FAISS on them; "all" on a machine without CUDA embeds on the CPU. Not with --ray/--device.
    gpus: str | None = None
    # Embed on a Ray cluster: "local" starts one here, anything else is ray.init's address (index_build.distributed).
    ray: str | None = None
    # Passages between the read stage's checkpoints: what a build killed while reading loses at most.
    checkpoint_passages: int = CHECKPOINT_PASSAGES
    # Vectors per saved block of the FAISS adding stage (IVF): what a build killed while adding loses at most.
    faiss_add_block: int = ADD_BLOCK_VECTORS
    # Older bundles whose vectors stand in for embedding the passages they share with this corpus (`--reuse`,
    # index_build.reuse). The result equals a build without them to float rounding, so they are a run option.
    reuse: Sequence[str | os.PathLike[str]] = ()

    def check(self) -> None:
        """Raise a domain error for options that cannot go together, or a Ray cluster that is not there."""
        if self.ray is not None:
            check_ray(self.ray)
        if self.gpus is not None and (self.ray is not None or self.device is not None):
            raise BuildError("give --gpus alone: --ray spreads embedding over a cluster, --device picks one device")


__all__ = ["BuildOptions", "RunOptions"]
