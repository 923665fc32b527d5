"""Orchestrate a build: read -> store -> embed (sharded) -> FAISS -> tuning -> manifest, resumable at each stage.

Everything is built in a staging directory beside the output (`wiki.idx.partial/`) and renamed into place
only when complete, so `--out` holds either nothing, the previous index, or the new finished one. Killing
a build and running the same command again picks up the staging directory: a finished stage is kept, and
embedding resumes at the first missing shard.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index_build.budget import BudgetError, Choice, choose_for_budget
from index_build.devices import GpuSelection, parse_gpus
from index_build.distributed import check_ray, embed_on_ray
from index_build.documents import CorpusError
from index_build.embed import embed_passages
from index_build.embed_pool import embed_on_devices
from index_build.faiss_gpu import faiss_gpu_count
from index_build.faiss_index import (
    ADD_BLOCK_VECTORS,
    TRAINED_NAME,
    build_faiss,
    choose_factory,
    saved_blocks,
    write_faiss,
)
from index_build.faults import BuildIOError, stage_io
from index_build.lexical_writer import index_store
from index_build.onnx_export import query_encoder_stage
from index_build.passage_stats import passage_stats
from index_build.read_stage import partial_store, read_corpora
from index_build.readers import open_corpus
from index_build.staging import (
    FAISS_PARTS_DIR,
    SHARDS_DIR,
    BuildError,
    check_out,
    identity_of,
    open_staging,
    publish,
    save_state,
    staging_path,
)
from index_build.store_writer import CHECKPOINT_PASSAGES, finish_store, read_checkpoint
from index_build.tuning import TARGET_RECALL, TUNING_QUERIES, check_target, tune_with_openings
from index_build.vectors_writer import write_vectors
from retriever.bundle import (
    ENCODER_DIR,
    FAISS_NAME,
    MANIFEST_NAME,
    STORE_NAME,
    TEXT_TEMPLATE,
    FileInfo,
    Manifest,
    ModelInfo,
    QueryEncoderInfo,
    SourceInfo,
    atomic_open,
    atomic_path,
    file_info,
    package_version,
)
from retriever.faiss_io import read_faiss
from retriever.lexical import LEXICAL_DIR, lexical_info
from retriever.model import DEFAULT_MODEL, Encoder, default_batch_size
from retriever.rescore import VECTORS_NAME, ExactVectors
from retriever.store import PassageStore


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


@dataclass
class BuildReport:
    out: Path
    manifest: Manifest
    resumed_stages: list[str] = field(default_factory=list)
    errors_skipped: int = 0
    tuning_seconds: float | None = None  # None where nothing was tuned now (exact index, or kept on resume)


def build_index(
    sources: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: BuildOptions = BuildOptions(),
    run: RunOptions = RunOptions(),
    force: bool = False,
) -> BuildReport:
    out_path = Path(out)
    if options.passage_words < 1:
        raise BuildError(f"--passage-words must be at least 1, got {options.passage_words}")
    if options.shard_size < 1:
        raise BuildError(f"--shard-size must be at least 1, got {options.shard_size}")
    if options.tuning_queries < 1:
        raise BuildError(f"tuning_queries must be at least 1, got {options.tuning_queries}")
    try:
        check_target(options.target_recall)
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    if options.memory_budget is not None and options.index_factory is not None:
        raise BuildError("give --index or --memory-budget, not both: --index names the factory, the budget chooses one")
    if options.memory_budget is not None and options.memory_budget < 1:
        raise BuildError(f"--memory-budget must be positive, got {options.memory_budget}")
    if run.ray is not None:
        check_ray(run.ray)
    if run.gpus is not None and (run.ray is not None or run.device is not None):
        raise BuildError("give --gpus alone: --ray spreads embedding over a cluster, --device picks one device")
    selection = parse_gpus(run.gpus)  # a bad --gpus fails here, before hours of reading
    if selection is not None and (run.progress or selection.cpu_fallback):
        print(selection.note(), file=sys.stderr)
    # Open every corpus before anything is written: a wrong path or format fails with nothing to clean up.
    corpora = [
        open_corpus(
            s, format=options.format, base_url=options.base_url, skip_errors=options.skip_errors, workers=run.workers
        )
        for s in sources
    ]
    check_out(out_path, force)
    staging = staging_path(out_path)
    identity = identity_of(options, corpora)
    state = open_staging(staging, identity)
    report_stages: list[str] = []
    tuning_seconds: float | None = None

    if not (staging / MANIFEST_NAME).exists():
        store_path, partial = staging / STORE_NAME, partial_store(staging / STORE_NAME)
        if "reader_stats" in state:  # the read finished before the kill
            report_stages.append("read")
        else:
            try:
                result = read_corpora(corpora, partial, options.passage_words, run.progress, run.checkpoint_passages)
            except (CorpusError, KeyboardInterrupt) as exc:
                # A bad corpus will fail the same way again, and an interrupt before the first checkpoint
                # leaves nothing worth resuming: leave nothing half-written behind. Otherwise keep it.
                checkpoint = read_checkpoint(partial) if isinstance(exc, KeyboardInterrupt) else None
                if state.get("created_now", False) and (checkpoint is None or checkpoint.counts.documents == 0):
                    shutil.rmtree(staging, ignore_errors=True)
                raise
            if result.resumed_documents:
                report_stages.append(f"{result.resumed_documents:,} articles read")
            state.update(sources=result.sources, reader_stats=result.reader_stats)
            state["passages_merged"] = result.passages_merged
            save_state(staging, state)
        if not store_path.exists():
            finish_store(partial)
            with stage_io("store", store_path):
                os.replace(partial, store_path)
        store = PassageStore(store_path)
        passages = store.count()
        lexical_path = staging / LEXICAL_DIR
        if options.lexical and lexical_path.exists():
            report_stages.append("lexical")
        elif options.lexical:
            index_store(store, lexical_path, TEXT_TEMPLATE, progress=run.progress)
        devices = selection.torch_devices() if selection is not None else None
        # With --ray the driver's model only gives the weights' identity and dimension: CPU will do. With
        # --gpus it embeds the tuning queries, on the first device.
        device = "cpu" if run.ray is not None else devices[0] if devices else run.device
        encoder = Encoder(options.model, device=device)
        # Chosen before embedding, so that a budget nothing fits fails in seconds, not after hours.
        budget = _budget_choice(options, passages, encoder.dimension)
        factory = options.index_factory or (budget.factory if budget else choose_factory(passages))
        batch_size = run.batch_size or default_batch_size(encoder.device)
        if run.ray is not None:
            shard_dir, shard_size = staging / SHARDS_DIR, options.shard_size
            shards = embed_on_ray(
                run.ray, store_path, encoder, shard_dir, passages, shard_size, run.batch_size, run.device, run.progress
            )
        elif devices is not None and len(devices) > 1:
            shards = embed_on_devices(
                store_path,
                encoder.identity,
                staging / SHARDS_DIR,
                passages,
                options.shard_size,
                run.batch_size,
                devices,
                run.progress,
            )
        else:  # one device (or --gpus all falling back to the CPU): in this process
            shards = embed_passages(
                store, encoder, staging / SHARDS_DIR, passages, options.shard_size, batch_size, progress=run.progress
            )
        faiss_path = staging / FAISS_NAME
        index_kept = faiss_path.exists()
        if index_kept:
            report_stages.append("index")
            index = read_faiss(faiss_path)
        else:
            parts_dir = staging / FAISS_PARTS_DIR
            report_stages.extend(_kept_faiss_parts(parts_dir))
            # The first run's block size stays, so that a rerun with another finds the blocks it saved.
            add_block = state.setdefault("faiss_add_block", run.faiss_add_block)
            save_state(staging, state)
            try:
                index = build_faiss(
                    shards, encoder.dimension, factory, _faiss_gpus(run, selection), parts_dir, add_block
                )
            except ValueError as exc:
                raise BuildError(str(exc)) from None
            with stage_io("FAISS", faiss_path), atomic_path(faiss_path) as tmp:
                write_faiss(index, tmp, faiss_path)
        vectors_path = staging / VECTORS_NAME
        if options.rescore and not vectors_path.exists():
            write_vectors(shards, vectors_path, encoder.dimension)
        if index_kept and "ann" in state:  # tuned before the kill, for this very FAISS file
            report_stages.append("tuning")
        else:
            rescorer = ExactVectors(vectors_path, passages, encoder.dimension) if options.rescore else None
            with stage_io("tuning", staging / SHARDS_DIR, "read"):  # it reads every shard again
                tuning = tune_with_openings(
                    index, shards, store, encoder, options.target_recall, options.tuning_queries, batch_size, rescorer
                )
            state["ann"] = tuning.record() if tuning is not None else None
            tuning_seconds = tuning.seconds if tuning is not None else None
            save_state(staging, state)
        query_encoder: QueryEncoderInfo | None = None
        no_query_encoder: str | None = "built with --no-onnx"
        if options.onnx:
            with stage_io("query encoder", staging / ENCODER_DIR):
                query_encoder, no_query_encoder, kept = query_encoder_stage(
                    staging, state, encoder, store, passages, shards
                )
            if kept:
                report_stages.append("query encoder")
            save_state(staging, state)
        ann = state["ann"]
        manifest = Manifest(
            model=ModelInfo(options.model, encoder.identity.weights_sha256, encoder.dimension),
            faiss_factory=factory,
            search_params=dict(ann["params"]) if ann else {},
            documents=store.count("documents"),
            passages=passages,
            sources=[SourceInfo(**s) for s in state["sources"]],
            files=_bundle_files(staging, lexical_path if options.lexical else None, options.rescore, query_encoder),
            build_options=asdict(options),
            package_version=package_version(),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            lexical=asdict(lexical_info()) if options.lexical else None,
            extra={
                "reader_stats": state.get("reader_stats", {}),
                **({"memory_budget": budget.record()} if budget else {}),
                "passages": _passage_stats(staging / STORE_NAME, options, state),
            },
            ann=ann,
            query_encoder=query_encoder,
            no_query_encoder=no_query_encoder,
        )
        manifest_path = staging / MANIFEST_NAME
        with stage_io("manifest", manifest_path), atomic_open(manifest_path, "w", encoding="utf-8") as fh:
            fh.write(manifest.to_json())
    else:
        report_stages.append("manifest")
        manifest = Manifest.from_dict(json.loads((staging / MANIFEST_NAME).read_text(encoding="utf-8")))
    publish(staging, out_path)
    skipped = sum(int(s.get("errors_skipped", 0)) for s in state.get("reader_stats", {}).values())
    return BuildReport(out_path, manifest, report_stages, skipped, tuning_seconds)


def _passage_stats(store: Path, options: BuildOptions, state: dict[str, Any]) -> dict[str, Any]:
    """Passage lengths, merges and skipped pages (index_build.passage_stats); "merged" is None when the read
    was finished by a groundsearch that did not count merges."""
    return passage_stats(store, options.passage_words, state.get("passages_merged"), state.get("reader_stats", {}))


def _budget_choice(options: BuildOptions, passages: int, dimension: int) -> Choice | None:
    """The memory-budget chooser's pick (index_build.budget), or None without --memory-budget."""
    if options.memory_budget is None:
        return None
    try:
        return choose_for_budget(passages, dimension, options.memory_budget)
    except BudgetError as exc:
        raise BuildError(str(exc)) from None


def _faiss_gpus(run: RunOptions, selection: GpuSelection | None) -> list[int] | None:
    """The GPU ids FAISS builds on: none when turned off, the --gpus ones faiss sees, else all it sees (None)."""
    if run.use_gpu_faiss is False:
        return []
    if selection is None:
        return None
    return [i for i in selection.ids if i < faiss_gpu_count()]


def _kept_faiss_parts(parts_dir: Path) -> list[str]:
    """What a killed FAISS stage left that this run reuses, for the build's "resumed" line."""
    kept = ["FAISS training"] if (parts_dir / TRAINED_NAME).exists() else []
    blocks = saved_blocks(parts_dir)
    return kept + ([f"{blocks} FAISS block{'s' * (blocks > 1)}"] if blocks else [])


def _bundle_files(
    staging: Path, lexical: Path | None, vectors: bool = False, query_encoder: QueryEncoderInfo | None = None
) -> dict[str, FileInfo]:
    """Every file the finished bundle holds, so that opening it can tell a truncated or missing one."""
    files = {"store": file_info(staging / STORE_NAME), "faiss": file_info(staging / FAISS_NAME)}
    if vectors:
        files["vectors"] = file_info(staging / VECTORS_NAME)
    if query_encoder is not None:  # hashed by the export already (and checked again on resume): not re-read
        for key, (name, digest) in query_encoder.files().items():
            files[key] = FileInfo(name, (staging / name).stat().st_size, digest)
    if lexical is not None:
        for path in sorted(p for p in lexical.rglob("*") if p.is_file()):
            info = file_info(path, staging)
            files[info.name] = info
    return files


__all__ = ["BuildError", "BuildIOError", "BuildOptions", "BuildReport", "RunOptions", "build_index"]
