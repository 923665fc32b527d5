"""Measure each memory-budget candidate's recall@10 against exact search: the table in index_build.budget.

    python bench/codecs.py --json codecs.json

Two data sets, both inner product over unit vectors, k = 10:

- real: the MiniLM vectors of every SQuAD context (1,023 paragraphs) as the corpus, 1,000 real SQuAD questions embedded
  by the same model as queries. Small: PQ codebooks are trained on fewer points than FAISS asks for.
- synthetic: --n (default 50,000) vectors of bench/synthetic.Mixture (clustered, with the real vectors'
  mean and spectrum), 1,000 held-out draws as queries.

Every codec shares one coarse quantizer per data set (trained once) and is searched at nprobe = nlist / 16
and nlist / 4; index_build.budget.RECALL_TABLE takes the real set's figures at nlist / 4. Bytes per vector are
read from the written file (at these small n they include the centroids).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthetic import Mixture, real_vectors, squad_questions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "gs-real-squad.npy")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import faiss

    from index_build.budget import candidates
    from retriever.model import DEFAULT_MODEL, Encoder

    real = real_vectors(args.cache)
    questions = np.asarray(Encoder(DEFAULT_MODEL, device="cpu").encode(squad_questions()[:1000], batch_size=64))
    mixture = Mixture(real)
    sets = {
        "real": (real, questions.astype(np.float32)),
        "synthetic": (mixture.sample(args.n, seed=1), mixture.sample(1000, seed=7)),
    }
    results: dict[str, list[dict[str, object]]] = {}
    for name, (xb, xq) in sets.items():
        _, exact = faiss.knn(xq, xb, 10, metric=faiss.METRIC_INNER_PRODUCT)
        results[name] = []
        factories = [(c.factory, c.codec) for c in candidates(len(xb), xb.shape[1]) if c.codec != "Flat"]
        nlist = faiss.extract_index_ivf(faiss.index_factory(xb.shape[1], factories[0][0])).nlist
        factories.append((f"IVF{nlist},PQ192x4fs", "PQ192x4fs"))
        # One coarse quantizer, trained once, shared by every codec: the codecs differ in what they store.
        began = time.perf_counter()
        quantizer = faiss.IndexFlatIP(xb.shape[1])
        faiss.Clustering(xb.shape[1], nlist).train(xb, quantizer)
        print(name, f"coarse quantizer IVF{nlist} trained in {time.perf_counter() - began:.1f} s", flush=True)
        for factory, codec in factories:
            began = time.perf_counter()
            index = make_ivf(faiss, quantizer, xb.shape[1], nlist, codec)
            index.train(xb)
            index.add(xb)
            build_s = time.perf_counter() - began
            with tempfile.NamedTemporaryFile(suffix=".faiss") as fh:
                faiss.write_index(index, fh.name)
                size = Path(fh.name).stat().st_size
            ivf = faiss.extract_index_ivf(index)
            entry: dict[str, object] = {"factory": factory, "codec": codec, "bytes_per_vector": size / len(xb)}
            for probe in (max(1, ivf.nlist // 16), max(1, ivf.nlist // 4)):
                params = faiss.SearchParametersIVF(nprobe=probe)  # type: ignore[call-arg]
                began = time.perf_counter()
                _, found = index.search(xq, 10, params=params)
                ms = (time.perf_counter() - began) * 1000 / len(xq)
                recall = float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)]))
                entry[f"recall@10 nprobe={probe}"] = round(recall, 3)
                entry[f"ms/query nprobe={probe}"] = round(ms, 3)
            entry["build_s"] = round(build_s, 1)
            results[name].append(entry)
            print(name, json.dumps(entry), flush=True)
    for name, entries in results.items():
        print(f"\n{name}: {len(sets[name][0]):,} vectors, 1,000 queries")
        keys = [k for k in entries[0] if k.startswith("recall") or k.startswith("ms")]
        print("| factory | bytes/vector | " + " | ".join(keys) + " |")
        for e in entries:
            print(f"| {e['factory']} | {e['bytes_per_vector']:.1f} | " + " | ".join(str(e[k]) for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def make_ivf(faiss: Any, quantizer: Any, d: int, nlist: int, codec: str) -> Any:
    """The IVF index that `IVF{nlist},{codec}` names, over an already trained quantizer."""
    ip = faiss.METRIC_INNER_PRODUCT
    if codec == "IVF,Flat":
        return faiss.IndexIVFFlat(quantizer, d, nlist, ip)
    if codec == "IVF,SQ8":
        return faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, ip)
    m = int(codec.removeprefix("PQ").removesuffix("x4fs"))
    if codec.endswith("x4fs"):
        return faiss.IndexIVFPQFastScan(quantizer, d, nlist, m, 4, ip)
    return faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, ip)


if __name__ == "__main__":
    main()
