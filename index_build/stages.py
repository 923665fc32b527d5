"""The build as a list of stages: read, lexical, embed, train, add, tune, query encoder, finish.

Each stage is a function `(BuildState, Job) -> BuildState`. It decides itself, first thing, whether a killed
build already did its work (a recorded result in the state, or its file in the staging directory) and then
only reports it kept; otherwise it works and returns the state with its result. `run_stages` walks the list
and saves the state whenever a stage changed it, so a fresh build and a resumed one walk the same list and no
stage knows another's internals.

`Job` is what a stage needs besides the state, for this run only: the options, the opened corpora and what an
earlier stage of the same run made (the store, the model, the FAISS index). Nothing in it is persisted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from index_build.budget import Choice, choose_for_budget
from index_build.bundle_writer import bundle_manifest, write_manifest
from index_build.calibration import calibration_for
from index_build.devices import GpuSelection
from index_build.distributed import RayCluster
from index_build.documents import CorpusError
from index_build.embed import Backend, InProcess, batch_for, embed_shards, missing_shards, read_seed, shard_ranges
from index_build.embed_pool import pool_backend
from index_build.faiss_gpu import faiss_gpu_count
from index_build.faiss_index import TRAINED_NAME, add_faiss, choose_factory, saved_blocks, train_faiss, write_faiss
from index_build.faults import stage_io
from index_build.lexical_writer import index_store
from index_build.onnx_export import export_for_build, files_match
from index_build.options import BuildOptions, RunOptions
from index_build.passage_stats import passage_stats
from index_build.read_stage import partial_store, read_corpora
from index_build.readers import Corpus
from index_build.reuse import BuildModel, VectorSource, plan_shards, write_plans
from index_build.staging import FAISS_PARTS_DIR, SHARDS_DIR
from index_build.state import BuildState, EncoderRecord, save_state
from index_build.store_writer import finish_store, read_checkpoint
from index_build.tuning import tune_with_openings
from index_build.vector_keys import KeyModel, write_keys
from index_build.vectors_writer import write_vectors
from retriever.bundle import (
    ENCODER_DIR,
    FAISS_NAME,
    MANIFEST_NAME,
    STORE_NAME,
    TEXT_TEMPLATE,
    VECTOR_KEY_VERSION,
    VECTOR_KEYS_NAME,
    VECTORS_F32_NAME,
    Manifest,
    ModelInfo,
    ReusableVectors,
    SourceInfo,
    atomic_path,
)
from retriever.faiss_io import read_faiss
from retriever.lexical import LEXICAL_DIR
from retriever.model import Encoder
from retriever.rescore import VECTORS_NAME, ExactVectors
from retriever.store import PassageStore


@dataclass
class Job:
    """One run of a build: its inputs, and what a stage of this run hands to a later one."""

    staging: Path
    options: BuildOptions
    run: RunOptions
    corpora: list[Corpus]
    selection: GpuSelection | None
    created_now: bool  # the staging directory is this run's: a failed read may remove it
    kept: list[str] = field(default_factory=list)  # what a killed build left that this run reuses, in order
    sources: list[VectorSource] = field(default_factory=list)  # the --reuse bundles, opened and checked
    shards: list[Path] = field(default_factory=list)
    trained: Any = None  # the trained, empty FAISS index (train -> add)
    index: Any = None  # the filled FAISS index (add -> tune)
    tuning_seconds: float | None = None  # None where nothing was tuned now (exact index, or kept on resume)
    manifest: Manifest | None = None

    @cached_property
    def store(self) -> PassageStore:
        return PassageStore(self.staging / STORE_NAME)

    @cached_property
    def passages(self) -> int:
        return self.store.count()

    @cached_property
    def devices(self) -> list[str] | None:
        """The torch devices of --gpus, or None without it."""
        return self.selection.torch_devices() if self.selection is not None else None

    @cached_property
    def encoder(self) -> Encoder:
        """The build's model. With --ray the driver's copy only gives the weights' identity and dimension: the
        CPU will do. With --gpus it embeds the tuning queries, on the first device."""
        device = "cpu" if self.run.ray is not None else self.devices[0] if self.devices else self.run.device
        return Encoder(self.options.model, device=device)

    @property
    def model(self) -> BuildModel:
        """The build's model as reuse keys see it (index_build.vector_keys)."""
        identity = self.encoder.identity
        return BuildModel(
            self.options.model, KeyModel(identity.weights_sha256, self.encoder.max_length), self.encoder.dimension
        )

    @property
    def keys_path(self) -> Path | None:
        """Where the passages' reuse keys go: into the bundle when it keeps its vectors, else beside the shards
        (deleted with them) when only --reuse needs them, else nowhere."""
        if self.options.keep_vectors:
            return self.staging / VECTOR_KEYS_NAME
        return self.staging / SHARDS_DIR / VECTOR_KEYS_NAME if self.sources else None

    @cached_property
    def budget(self) -> Choice | None:
        """The memory-budget chooser's pick (index_build.budget), or None without --memory-budget."""
        if self.options.memory_budget is None:
            return None
        return choose_for_budget(self.passages, self.encoder.dimension, self.options.memory_budget)

    @cached_property
    def factory(self) -> str:
        budget = self.budget.factory if self.budget else None
        return self.options.index_factory or budget or choose_factory(self.passages)

    @property
    def faiss_gpus(self) -> list[int] | None:
        """The GPU ids FAISS builds on: none when turned off, the --gpus ones faiss sees, else all it sees (None)."""
        if self.run.use_gpu_faiss is False:
            return []
        if self.selection is None:
            return None
        return [i for i in self.selection.ids if i < faiss_gpu_count()]

    def save(self, state: BuildState) -> BuildState:
        save_state(self.staging, state)
        return state


Stage = Callable[[BuildState, Job], BuildState]


def read(state: BuildState, job: Job) -> BuildState:
    """Every corpus into the passage store; kept once the state holds the readers' counts. A killed read
    resumes after its last checkpoint (index_build.read_stage)."""
    store_path, partial = job.staging / STORE_NAME, partial_store(job.staging / STORE_NAME)
    if state.read:
        job.kept.append("read")
    else:
        options, run = job.options, job.run
        try:
            result = read_corpora(job.corpora, partial, options.passage_words, run.progress, run.checkpoint_passages)
        except (CorpusError, KeyboardInterrupt) as exc:
            # A bad corpus will fail the same way again, and an interrupt before the first checkpoint
            # leaves nothing worth resuming: leave nothing half-written behind. Otherwise keep it.
            checkpoint = read_checkpoint(partial) if isinstance(exc, KeyboardInterrupt) else None
            if job.created_now and (checkpoint is None or checkpoint.counts.documents == 0):
                shutil.rmtree(job.staging, ignore_errors=True)
            raise
        if result.resumed_documents:
            job.kept.append(f"{result.resumed_documents:,} articles read")
        # Saved before the store is finished and renamed: a kill in between finds a complete partial file.
        sources = tuple(SourceInfo(**s) for s in result.sources)
        state = job.save(
            state.replace(sources=sources, reader_stats=result.reader_stats, passages_merged=result.passages_merged)
        )
    if not store_path.exists():
        finish_store(partial)
        with stage_io("store", store_path):
            os.replace(partial, store_path)
    return state


def lexical(state: BuildState, job: Job) -> BuildState:
    """The BM25 index (--lexical); kept when its directory is there (written under a temporary name)."""
    path = job.staging / LEXICAL_DIR
    if job.options.lexical and path.exists():
        job.kept.append("lexical")
    elif job.options.lexical:
        index_store(job.store, path, TEXT_TEMPLATE, progress=job.run.progress)
    return state


def embed(state: BuildState, job: Job) -> BuildState:
    """Every passage's vector, in shards; a complete shard is kept (index_build.embed.embed_shards). With --reuse
    the rows older bundles hold are filled in first (index_build.reuse), so back-ends embed only the rest."""
    _ = job.factory  # chosen before embedding, so that a budget nothing fits fails in seconds, not after hours
    shard_dir, dimension = job.staging / SHARDS_DIR, job.encoder.dimension
    keys = None
    if job.keys_path is not None:
        with stage_io("embedding", shard_dir):
            shard_dir.mkdir(parents=True, exist_ok=True)
        keys = write_keys(job.store, job.model.key, job.keys_path, job.run.progress)
    todo = missing_shards(shard_dir, list(shard_ranges(job.passages, job.options.shard_size)), dimension)
    state = _reuse(state, job, todo, keys)
    backend = _backend(job, shard_dir)
    job.shards = embed_shards(backend, shard_dir, job.passages, job.options.shard_size, dimension, job.run.progress)
    return state


def _reuse(state: BuildState, job: Job, todo: list[tuple[int, int, int]], keys: np.ndarray | None) -> BuildState:
    """Record, for each shard left to embed, how many of its rows come from --reuse bundles, then write what they
    hold. Without --reuse now, a shard's count is what its seed from an earlier run holds (0 without one)."""
    shard_dir, dimension = job.staging / SHARDS_DIR, job.encoder.dimension
    counts = dict(state.vectors_reused or {})
    if job.sources and keys is not None:
        plans = plan_shards(job.sources, keys, todo)
        counts.update({plan.number: plan.reused for plan in plans})
    else:
        for number, first, last in todo:
            seed = read_seed(shard_dir, number, last - first, dimension)
            counts[number] = seed.reused if seed is not None else 0
    used = tuple(dict.fromkeys([*state.reused_from, *(str(s.path) for s in job.sources)]))
    state = job.save(state.replace(vectors_reused=counts, reused_from=used))
    if job.sources and keys is not None:
        write_plans(plans, job.sources, keys, shard_dir, dimension)
    return state


def _backend(job: Job, shard_dir: Path) -> Backend:
    """Ray with --ray, a device pool with --gpus on several devices, else this process."""
    run, store_path = job.run, job.staging / STORE_NAME
    if run.ray is not None:
        return RayCluster(run.ray, store_path.resolve(), job.encoder, shard_dir.resolve(), run.batch_size, run.device)
    if job.devices is not None and len(job.devices) > 1:
        return pool_backend(store_path, job.encoder.identity, shard_dir, run.batch_size, job.devices)
    # one device (or --gpus all falling back to the CPU): the build's own model, in this process
    return InProcess(job.store, lambda: job.encoder, shard_dir, run.batch_size)


def train(state: BuildState, job: Job) -> BuildState:
    """The trained, empty FAISS index; nothing to do once index.faiss is there, and an IVF index trained by a
    killed build is read back from faiss-parts/ (index_build.faiss_index.train_faiss)."""
    if (job.staging / FAISS_NAME).exists():
        return state
    parts_dir = job.staging / FAISS_PARTS_DIR
    if (parts_dir / TRAINED_NAME).exists():
        job.kept.append("FAISS training")
    job.trained = train_faiss(job.shards, job.encoder.dimension, job.factory, job.faiss_gpus, parts_dir)
    return state


def add(state: BuildState, job: Job) -> BuildState:
    """The filled index, written as index.faiss, the float16 vectors for --rescore and the float32 ones a later
    --reuse takes; kept when written. An IVF index's blocks saved by a killed build are reused
    (index_build.faiss_index.add_faiss)."""
    faiss_path = job.staging / FAISS_NAME
    if faiss_path.exists():
        job.kept.append("index")
        job.index = read_faiss(faiss_path)
    else:
        parts_dir = job.staging / FAISS_PARTS_DIR
        blocks = saved_blocks(parts_dir)
        if blocks:
            job.kept.append(f"{blocks} FAISS block{'s' * (blocks > 1)}")
        # The first run's block size stays, so that a rerun with another finds the blocks it saved; a tuning
        # recorded for an earlier index.faiss is void.
        add_block = state.faiss_add_block or job.run.faiss_add_block
        state = job.save(state.replace(faiss_add_block=add_block, tuned=False, ann=None))
        job.index = add_faiss(job.trained, job.shards, job.faiss_gpus, parts_dir, add_block)
        with stage_io("FAISS", faiss_path), atomic_path(faiss_path) as tmp:
            write_faiss(job.index, tmp, faiss_path)
    vectors_path = job.staging / VECTORS_NAME
    if job.options.rescore and not vectors_path.exists():
        write_vectors(job.shards, vectors_path, job.encoder.dimension)
    kept_path = job.staging / VECTORS_F32_NAME
    if job.options.keep_vectors and not kept_path.exists():
        write_vectors(job.shards, kept_path, job.encoder.dimension, np.float32)
    return state


def tune(state: BuildState, job: Job) -> BuildState:
    """An approximate index's default nprobe/efSearch, measured (index_build.tuning); kept once recorded."""
    if state.tuned:
        job.kept.append("tuning")
        return state
    options, dimension = job.options, job.encoder.dimension
    rescorer = ExactVectors(job.staging / VECTORS_NAME, job.passages, dimension) if options.rescore else None
    batch_size = batch_for(job.run.batch_size, job.encoder.device)
    with stage_io("tuning", job.staging / SHARDS_DIR, "read"):  # it reads every shard again
        tuning = tune_with_openings(
            job.index,
            job.shards,
            job.store,
            job.encoder,
            options.target_recall,
            options.tuning_queries,
            batch_size,
            rescorer,
        )
    job.tuning_seconds = tuning.seconds if tuning is not None else None
    return state.replace(tuned=True, ann=tuning.record() if tuning is not None else None)


def query_encoder(state: BuildState, job: Job) -> BuildState:
    """The ONNX query encoder (--onnx; index_build.onnx_export); kept when its files are there, whole."""
    if not job.options.onnx:
        return state
    record = state.query_encoder
    with stage_io("query encoder", job.staging / ENCODER_DIR):
        if record is not None and (record.info is None or files_match(job.staging, record.info)):
            job.kept.append("query encoder")
            return state
        info, why = export_for_build(job.staging, job.encoder, job.store, job.passages, job.shards)
    return state.replace(query_encoder=EncoderRecord(info, why))


def finish(state: BuildState, job: Job) -> BuildState:
    """The manifest, written last: a staging directory with one only has to be swapped into place."""
    options, encoder = job.options, job.encoder
    record = state.query_encoder if options.onnx else None
    # The match-confidence model fitted for this embedding model, if one was (retriever.confidence).
    confidence, no_confidence = calibration_for(encoder.identity.weights_sha256)
    reusable = (
        ReusableVectors(
            VECTORS_F32_NAME,
            VECTOR_KEYS_NAME,
            VECTOR_KEY_VERSION,
            encoder.identity.weights_sha256,
            encoder.max_length,
            TEXT_TEMPLATE,
            encoder.dimension,
        )
        if options.keep_vectors
        else None
    )
    job.manifest = bundle_manifest(
        job.staging,
        model=ModelInfo(options.model, encoder.identity.weights_sha256, encoder.dimension),
        factory=job.factory,
        documents=job.store.count("documents"),
        passages=job.passages,
        sources=list(state.sources or ()),
        build_options=asdict(options),
        search_params=dict(state.ann["params"]) if state.ann else {},
        lexical=options.lexical,
        vectors=options.rescore,
        query_encoder=record.info if record else None,
        no_query_encoder=record.why if record else "built with --no-onnx",
        ann=state.ann,
        reusable_vectors=reusable,
        extra={
            "reader_stats": state.reader_stats or {},
            # what the model embedded and what --reuse bundles gave, over every run of this build
            "vectors": {
                "reused": state.reused,
                "encoded": job.passages - state.reused,
                "reused_from": list(state.reused_from),
            },
            **({"memory_budget": job.budget.record()} if job.budget else {}),
            "passages": passage_stats(
                job.staging / STORE_NAME, options.passage_words, state.passages_merged, state.reader_stats or {}
            ),
        },
        confidence=confidence,
        no_confidence=no_confidence,
    )
    write_manifest(job.staging, job.manifest)
    return state


STAGES: tuple[Stage, ...] = (read, lexical, embed, train, add, tune, query_encoder, finish)


def run_stages(state: BuildState, job: Job) -> BuildState:
    """Walk the stages, saving the state whenever one changes it. A staging directory that holds a manifest
    was finished by a killed build: only the swap into place is left (index_build.staging.publish)."""
    manifest_path = job.staging / MANIFEST_NAME
    if manifest_path.exists():
        job.kept.append("manifest")
        job.manifest = Manifest.from_dict(json.loads(manifest_path.read_text(encoding="utf-8")))
        return state
    for stage in STAGES:
        after = stage(state, job)
        if after != state:
            job.save(after)
        state = after
    return state


__all__ = ["STAGES", "Job", "Stage", "run_stages"]
