"""One-line summaries of a manifest's records, as `build` and `info` print them."""

from __future__ import annotations

from typing import Any


def reuse_summary(vectors: dict[str, Any] | None, passages: int) -> str:
    """ "; vectors reused N (97.0%), encoded M" for a build given --reuse, else nothing."""
    if not vectors or not vectors.get("reused_from"):
        return ""
    share = 100 * vectors["reused"] / passages if passages else 0.0
    return f"; vectors reused {vectors['reused']:,} ({share:.1f}%), encoded {vectors['encoded']:,}"


def ann_summary(ann: dict[str, Any]) -> str:
    """The build's measurement of an approximate index, in one line (see index_build.tuning)."""
    params = ", ".join(f"{k}={v}" for k, v in ann["params"].items()) or "default search"
    knob = next(iter(ann["params"]), "")
    tried = f"; tried {knob} " + ", ".join(f"{v}: {r:.3f}" for v, r in ann["tried"]) if ann["tried"] else ""
    verdict = "met" if ann["met"] else "MISSED"
    return (
        f"recall@10 {ann['recall@10']:.3f} vs exact search at {params} (target {ann['target']:g} {verdict}, "
        f"{ann['queries']} queries from {ann.get('queries_from', 'passage vectors')}{tried})"
    )


def memory_summary(memory: dict[str, Any]) -> str:
    """Resident memory of the opened FAISS index against its file size: memory-mapped indexes stay far below."""
    mib = 1 << 20
    how = "memory-mapped" if memory["memory_mapped"] else "read into memory"
    return (
        f"FAISS private resident memory +{memory['resident_bytes'] / mib:,.1f} MiB after open, "
        f"file {memory['file_bytes'] / mib:,.1f} MiB "
        f"({how}; opened in {memory['open_seconds'] * 1000:,.0f} ms)"
    )


def lexical_summary(lexical: dict[str, Any] | None) -> str:
    if not lexical:
        return "none (dense search only; rebuild for lexical and hybrid)"
    return f"BM25, {lexical['engine']} {lexical['engine_version']} in {lexical['directory']}/"
