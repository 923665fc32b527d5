"""The whole query side at scale: a real bundle around bench/scale.py's store and index, opened with
`Retriever.open`, queried in every mode. Prints a table; asserts nothing.

    .venv/bin/python bench/scale.py --n 10000000 --work /tmp/gs-scale-10m --memory-budget 4GB \\
        --max-nlist 4096 --json /tmp/gs-scale-10m/scale.json
    .venv/bin/python bench/scale_bundle.py --work /tmp/gs-scale-10m

Adds to scale.py's work folder a tantivy BM25 index over its N stored passages (built as a build does,
`index_build.lexical_writer.index_store`) and a `bundle/` folder: hard links to the store and the FAISS file,
the lexical index, and a manifest naming the packaged MiniLM and the tuned nprobe from scale.json. Then, in a
fresh process (so that its memory is the query side's alone), `Retriever.open` and --queries real SQuAD
questions one at a time in each mode, through `Retriever.search` (encode, search, fuse, fetch, highlight).
The dense vectors are synthetic, so dense and hybrid rankings mean nothing here: the figures are costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

SERVE = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[3])
from scale import rss_mb
from synthetic import squad_questions
from retriever import Retriever

before = rss_mb()
began = time.perf_counter()
retriever = Retriever.open(sys.argv[1])
opened = time.perf_counter() - began
after = rss_mb()
questions = squad_questions()[: int(sys.argv[2])]
figures = {"open_s": opened, "open_rss_mb": after["VmRSS"] - before["VmRSS"], "open_anon_mb": after["RssAnon"]}
for mode in ("dense", "lexical", "hybrid"):
    retriever.search(questions[0], k=10, mode=mode)  # first call: lazy imports, caches
    times = []
    for q in questions:
        began = time.perf_counter()
        retriever.search(q, k=10, mode=mode)
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    figures[mode] = {"p50_ms": statistics.median(times), "p99_ms": times[int(round(0.99 * (len(times) - 1)))]}
figures["rss_after"] = rss_mb()
print(json.dumps(figures))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="bench/scale.py's --work folder")
    parser.add_argument("--queries", type=int, default=300, help="real SQuAD questions per mode")
    args = parser.parse_args()

    from scale import faiss_file

    from index_build.budget import format_size
    from index_build.bundle_writer import bundle_manifest, write_manifest
    from index_build.lexical_writer import index_store
    from retriever.bundle import FAISS_NAME, MANIFEST_NAME, STORE_NAME, TEXT_TEMPLATE, ModelInfo, SourceInfo
    from retriever.lexical import LEXICAL_DIR
    from retriever.model import DEFAULT_MODEL, Encoder
    from retriever.store import PassageStore

    work: Path = args.work
    scale = json.loads((work / "scale.json").read_text(encoding="utf-8"))
    factory = scale["factory"]
    store_path, faiss_path = work / "passages.sqlite", faiss_file(work, factory)
    bundle = work / "bundle"
    bundle.mkdir(exist_ok=True)
    rows: list[tuple[str, str]] = []

    lexical = bundle / LEXICAL_DIR
    store = PassageStore(store_path)
    passages = store.count()
    if not lexical.exists():
        began = time.perf_counter()
        index_store(store, lexical, TEXT_TEMPLATE, progress=False)
        took = time.perf_counter() - began
        rows.append(("lexical index built (tantivy)", f"{took:.0f} s = {passages / took:,.0f} passages/s"))
    lexical_bytes = sum(p.stat().st_size for p in lexical.rglob("*") if p.is_file())
    rows.append(("lexical index size", f"{format_size(lexical_bytes)} = {lexical_bytes / passages:.0f} bytes/passage"))

    for source, name in ((store_path, STORE_NAME), (faiss_path, FAISS_NAME)):
        if not (bundle / name).exists():
            os.link(source, bundle / name)
    if not (bundle / MANIFEST_NAME).exists():
        encoder = Encoder(DEFAULT_MODEL, device="cpu")
        manifest = bundle_manifest(
            bundle,
            model=ModelInfo(DEFAULT_MODEL, encoder.identity.weights_sha256, encoder.dimension),
            factory=factory,
            search_params=dict(scale.get("params") or {}),
            documents=store.count("documents"),
            passages=passages,
            sources=[SourceInfo(path=str(store_path), format="synthetic", size=0, sha256="")],
            build_options={"note": "bench/scale.py synthetic vectors; bench/scale_bundle.py manifest"},
        )
        write_manifest(bundle, manifest)

    command = [sys.executable, "-c", SERVE, str(bundle), str(args.queries), str(ROOT / "bench")]
    figures = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    rows.append(
        (
            "Retriever.open (fresh process)",
            f"{figures['open_s']:.2f} s (model load included), RSS +{figures['open_rss_mb']:.0f} MB",
        )
    )
    for mode in ("dense", "lexical", "hybrid"):
        rows.append(
            (
                f"Retriever.search, {mode}, k=10",
                f"p50 {figures[mode]['p50_ms']:.1f} ms, p99 {figures[mode]['p99_ms']:.1f} ms",
            )
        )
    rss = figures["rss_after"]
    rows.append(
        (
            f"RSS after {3 * (args.queries + 1)} searches",
            f"{rss['VmRSS']:.0f} MB (anonymous {rss['RssAnon']:.0f}, file-backed {rss['RssFile']:.0f})",
        )
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, no GPU, load average {os.getloadavg()[0]:.1f}"
    print(f"\n{passages:,} passages, {factory} (nprobe {scale.get('params')}), {args.queries} SQuAD questions")
    print(f"machine: {machine}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")
    (work / "scale_bundle.json").write_text(json.dumps({"rows": rows, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
