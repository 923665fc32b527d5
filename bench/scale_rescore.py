"""What exact re-scoring (`build --rescore`) does to a compressed index at scale. Prints a table.

    .venv/bin/python bench/scale_rescore.py --work /tmp/gs-scale-21m   # after bench/scale.py at that size

On bench/scale.py's shards and FAISS file: writes the float16 copy of every vector as a build with --rescore
does (`index_build.vectors_writer.write_vectors`), then measures recall@10 against exact search with
re-scoring (`retriever.rescore.ExactVectors`, the top 100 candidates re-ranked by exact inner product) for
nprobe 1, 2, 4, ... until the target, on the same 1,000 held-out mixture draws scale.py measured the codes
alone with, and the latency of one query (FAISS search of 100 + re-scoring) at the chosen nprobe.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="bench/scale.py's --work folder")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--target", type=float, default=0.95)
    args = parser.parse_args()

    import faiss
    from scale import faiss_file, p99, rss_mb
    from synthetic import Mixture, real_vectors

    from index_build.budget import format_size
    from index_build.tuning import tune_search
    from index_build.vectors_writer import write_vectors
    from retriever.faiss_io import read_faiss
    from retriever.rescore import ExactVectors

    work: Path = args.work
    scale = json.loads((work / "scale.json").read_text(encoding="utf-8"))
    shards = sorted((work / "shards").glob("shard-*.npy"))
    index = read_faiss(faiss_file(work, scale["factory"]))
    rows: list[tuple[str, str]] = []
    vectors_path = work / "vectors.f16.npy"
    if not vectors_path.exists():
        began = time.perf_counter()
        write_vectors(shards, vectors_path, index.d)
        rows.append(("vectors.f16.npy written", f"{time.perf_counter() - began:.0f} s"))
    size = vectors_path.stat().st_size
    rows.append(("vectors.f16.npy on disk", f"{format_size(size)} = {size / index.ntotal:.0f} bytes/passage"))
    rescorer = ExactVectors(vectors_path, int(index.ntotal), int(index.d))
    queries = Mixture(real_vectors(work / "real-squad.npy")).sample(args.queries, seed=7)  # scale.py's queries
    tuning = tune_search(index, shards, args.target, query_vectors=queries, source="held-out", rescorer=rescorer)
    assert tuning is not None and tuning.value is not None
    tried = ", ".join(f"{v}: {r:.3f}" for v, r in tuning.tried)
    rows.append(
        (
            "recall@10 with re-scoring",
            f"{tuning.recall:.3f} at nprobe {tuning.value} ({tuning.seconds:.0f} s; tried {tried})",
        )
    )
    params = faiss.SearchParametersIVF(nprobe=tuning.value)  # type: ignore[call-arg]
    before = rss_mb()
    times = []
    for q in queries:
        began = time.perf_counter()
        scores, ids = index.search(q[None, :], rescorer.depth, params=params)
        candidates = [[(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]]
        rescorer.rescore(q[None, :], candidates, 10)
        times.append((time.perf_counter() - began) * 1000)
    after = rss_mb()
    rows.append(
        (
            f"search 100 + re-score, nprobe {tuning.value}",
            f"p50 {statistics.median(times):.2f} ms, p99 {p99(times):.2f} ms; RSS {after['VmRSS']:.0f} MB "
            f"(anonymous {after['RssAnon']:.0f}, was {before['RssAnon']:.0f})",
        )
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, no GPU, load average {os.getloadavg()[0]:.1f}"
    print(f"\n{index.ntotal:,} passages, {scale['factory']}, {len(queries)} held-out queries; machine: {machine}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")


if __name__ == "__main__":
    main()
