"""Write a bundle's manifest: the one place that lists a bundle's files and assembles its `Manifest`.

The build's finish stage uses it, and so do the bench scripts that package a store and a FAISS file of their
own, so that every bundle lists the same files the same way. The format itself lives in retriever.bundle.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index_build.faults import stage_io
from retriever.bundle import (
    FAISS_NAME,
    MANIFEST_NAME,
    STORE_NAME,
    FileInfo,
    Manifest,
    ModelInfo,
    QueryEncoderInfo,
    ReusableVectors,
    SourceInfo,
    atomic_open,
    file_info,
    package_version,
)
from retriever.lexical import LEXICAL_DIR, lexical_info
from retriever.rescore import VECTORS_NAME


def bundle_files(
    folder: Path,
    lexical: bool,
    vectors: bool = False,
    query_encoder: QueryEncoderInfo | None = None,
    reusable_vectors: ReusableVectors | None = None,
) -> dict[str, FileInfo]:
    """Every file the finished bundle holds, so that opening it can tell a truncated or missing one."""
    files = {"store": file_info(folder / STORE_NAME), "faiss": file_info(folder / FAISS_NAME)}
    if vectors:
        files["vectors"] = file_info(folder / VECTORS_NAME)
    if reusable_vectors is not None:
        files["vectors_f32"] = file_info(folder / reusable_vectors.vectors)
        files["vector_keys"] = file_info(folder / reusable_vectors.keys)
    if query_encoder is not None:  # hashed by the export already (and checked again on resume): not re-read
        for key, (name, digest) in query_encoder.files().items():
            files[key] = FileInfo(name, (folder / name).stat().st_size, digest)
    if lexical:
        for path in sorted(p for p in (folder / LEXICAL_DIR).rglob("*") if p.is_file()):
            info = file_info(path, folder)
            files[info.name] = info
    return files


def bundle_manifest(
    folder: Path,
    *,
    model: ModelInfo,
    factory: str,
    documents: int,
    passages: int,
    sources: list[SourceInfo],
    build_options: dict[str, Any],
    search_params: dict[str, Any] | None = None,
    lexical: bool = True,
    vectors: bool = False,
    query_encoder: QueryEncoderInfo | None = None,
    no_query_encoder: str | None = None,
    ann: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    confidence: dict[str, Any] | None = None,
    no_confidence: str | None = None,
    reusable_vectors: ReusableVectors | None = None,
) -> Manifest:
    """The manifest of the bundle in `folder` (its files hashed now), stamped with this version and time."""
    return Manifest(
        model=model,
        faiss_factory=factory,
        search_params=dict(search_params or {}),
        documents=documents,
        passages=passages,
        sources=sources,
        files=bundle_files(folder, lexical, vectors, query_encoder, reusable_vectors),
        build_options=build_options,
        package_version=package_version(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        lexical=asdict(lexical_info()) if lexical else None,
        extra=extra or {},
        ann=ann,
        query_encoder=query_encoder,
        no_query_encoder=no_query_encoder,
        confidence=confidence,
        no_confidence=no_confidence,
        reusable_vectors=reusable_vectors,
    )


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write `manifest.json` into `folder`, atomically: a bundle with a manifest is a finished one."""
    path = folder / MANIFEST_NAME
    with stage_io("manifest", path), atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(manifest.to_json())


__all__ = ["bundle_files", "bundle_manifest", "write_manifest"]
