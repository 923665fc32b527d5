"""Benchmark the whole pipeline on one corpus and print a table (no timing is asserted anywhere).

    python bench/pipeline.py data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2

Stages are timed separately, with the same functions `groundsearch build` uses: reading and cleaning
(articles/s), embedding through the sharded pipeline (passages/s) beside the model's raw `encode` rate on
the same texts (the ceiling), the BM25 index, FAISS build, bytes per passage on disk, peak RSS, and for
each search mode (dense, lexical, hybrid) single-query latency p50/p99 and `search_batch` throughput through
a real `Retriever` over the pieces just built (k=10, highlights on, as the CLI and the web page search), with
the bundle's ONNX query encoder (exported and parity-checked here, timed) and, for comparison, with torch.
Queries are SQuAD dev questions when tests/data holds them, else passage-derived questions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--queries", type=int, default=200, help="single queries to time")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import faiss
    import torch

    from index_build.bundle_writer import bundle_manifest, write_manifest
    from index_build.embed import embed_passages, embedding_texts
    from index_build.faiss_index import build_faiss, choose_factory
    from index_build.lexical_writer import index_store
    from index_build.onnx_export import PARITY_PASSAGES, export_query_encoder
    from index_build.readers import open_corpus
    from index_build.store_writer import finish_store, write_store
    from retriever import MODES, Retriever
    from retriever.bundle import FAISS_NAME, STORE_NAME, TEXT_TEMPLATE, ModelInfo
    from retriever.lexical import LEXICAL_DIR, LexicalIndex
    from retriever.model import DEFAULT_MODEL, Encoder, default_batch_size
    from retriever.onnx_encoder import OnnxEncoder
    from retriever.store import PassageStore

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = open_corpus(args.corpus, workers=args.workers)
        started = time.perf_counter()
        documents = list(corpus)
        read_s = time.perf_counter() - started
        rows.append(
            ("articles read and cleaned", f"{len(documents):,} in {read_s:.2f} s = {len(documents) / read_s:,.1f}/s")
        )

        started = time.perf_counter()
        counts = write_store(work / STORE_NAME, ((args.corpus.name, d) for d in documents), 100)
        finish_store(work / STORE_NAME)
        store_s = time.perf_counter() - started
        rows.append(("passages split and stored", f"{counts.passages:,} in {store_s:.2f} s"))

        store = PassageStore(work / STORE_NAME)
        started = time.perf_counter()
        index_store(store, work / LEXICAL_DIR, TEXT_TEMPLATE, progress=False)
        lexical_s = time.perf_counter() - started
        rows.append(("BM25 index (tantivy)", f"{counts.passages / lexical_s:,.0f} passages/s ({lexical_s:.2f} s)"))

        encoder = Encoder(DEFAULT_MODEL, device=args.device)
        batch = default_batch_size(encoder.device)
        started = time.perf_counter()
        shards = embed_passages(store, encoder, work / "shards", counts.passages, 8192, batch, progress=False)
        embed_s = time.perf_counter() - started
        rows.append(
            ("embedding, pipeline", f"{counts.passages / embed_s:,.1f} passages/s ({embed_s:.1f} s, {encoder.device})")
        )

        texts = embedding_texts(store, 0, counts.passages)
        started = time.perf_counter()
        encoder.encode(texts, batch_size=batch)
        raw_s = time.perf_counter() - started
        rows.append(("embedding, raw encode()", f"{counts.passages / raw_s:,.1f} passages/s (ceiling)"))

        factory = choose_factory(counts.passages)
        started = time.perf_counter()
        index = build_faiss(shards, encoder.dimension, factory)
        faiss_s = time.perf_counter() - started
        faiss.write_index(index, str(work / FAISS_NAME))
        rows.append((f"FAISS build ({factory})", f"{faiss_s:.3f} s"))
        lexical_bytes = sum(f.stat().st_size for f in (work / LEXICAL_DIR).rglob("*") if f.is_file())
        on_disk = (work / FAISS_NAME).stat().st_size + (work / STORE_NAME).stat().st_size + lexical_bytes
        rows.append(("bytes per passage on disk", f"{on_disk / counts.passages:,.0f} (store + FAISS + BM25)"))

        cpu_encoder = encoder if encoder.device == "cpu" else Encoder(DEFAULT_MODEL, device="cpu")
        started = time.perf_counter()
        onnx_info, why = export_query_encoder(
            cpu_encoder.sentence_transformer, encoder.identity.weights_sha256, work, texts[:PARITY_PASSAGES]
        )
        export_s = time.perf_counter() - started
        assert onnx_info is not None, why
        rows.append(
            (
                "ONNX query encoder export + parity",
                f"{export_s:.1f} s, lowest cosine {onnx_info.parity['min_cosine']:.7f} over "
                f"{onnx_info.parity['texts']} texts",
            )
        )

        # The work folder is laid out as a bundle: the build's own writer lists its files and writes the manifest.
        manifest = bundle_manifest(
            work,
            model=ModelInfo(DEFAULT_MODEL, encoder.identity.weights_sha256, encoder.dimension),
            factory=factory,
            documents=counts.documents,
            passages=counts.passages,
            sources=[],
            build_options={"note": "bench/pipeline.py"},
            query_encoder=onnx_info,
        )
        write_manifest(work, manifest)
        onnx_encoder = OnnxEncoder.from_manifest(work, manifest)
        lexical = LexicalIndex(work / LEXICAL_DIR)
        queries = _queries(texts, args.queries)
        # The torch encoder for comparison (dense only), then every mode as users query: through ONNX.
        runs = [("torch", "dense", encoder), *(("onnx", mode, onnx_encoder) for mode in MODES)]
        for name, mode, query_encoder in runs:
            retriever = Retriever(work, manifest, index, store, query_encoder, lexical)
            retriever.search(queries[0], k=10, mode=mode)  # warm: first-call costs are not a query's
            latencies = []
            for query in queries:
                started = time.perf_counter()
                retriever.search(query, k=10, mode=mode)
                latencies.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            retriever.search_batch(queries, k=10, mode=mode)
            batch_qps = len(queries) / (time.perf_counter() - started)
            rows.append(
                (
                    f"query, {mode} ({name} encoder): p50 / p99, batch",
                    f"{statistics.median(latencies):.1f} / {_p99(latencies):.1f} ms (k=10), {batch_qps:,.1f} queries/s",
                )
            )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS", f"{rss_mb:,.0f} MB"))
    load = os.getloadavg()[0]
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"faiss {faiss.__version__}, load average {load:.1f} at the end"
    )
    print(f"corpus: {args.corpus.name}   machine: {machine}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(dict(rows), indent=2))


def _queries(texts: list[str], n: int) -> list[str]:
    squad = Path(os.environ.get("GROUNDSEARCH_SHARED_DATA") or ROOT / "tests" / "data") / "squad"
    files = sorted(squad.glob("*.json")) if squad.is_dir() else []
    if files:
        data = json.loads(files[0].read_text(encoding="utf-8"))["data"]
        questions = [qa["question"] for art in data for p in art["paragraphs"] for qa in p["qas"]]
        return questions[:n]
    return [" ".join(t.split()[2:14]) for t in texts[:n]]


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


if __name__ == "__main__":
    main()
