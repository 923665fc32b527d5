"""Does tokenising in a background thread take tokenisation off the model's critical path? Prints a table.

    python bench/encode_overlap.py                          # CPU, 2,000 passages, batch 64
    python bench/encode_overlap.py --device cuda --n 20000  # fp16 on the GPU, batch 256

On the same N real passages (SQuAD dev paragraphs split into ~100-word passages with their titles, exactly
as a build embeds them), four rates, each the median of --repeats timed runs after one untimed warm-up:
sentence-transformers' own `model.encode`; `retriever.pipelined_encode.encode_pipelined` (what `Encoder.encode` uses);
tokenisation alone (the same batches, one thread, as the pipeline's tokeniser runs it); and the model alone
on pre-tokenised batches (host-to-device copy, forward, normalise). If tokenisation is hidden, the pipeline
runs at the model-alone rate; serially, at the harmonic sum of the two, which is roughly where `encode` sits.
The table also says whether the pipeline's vectors equal `encode`'s bit for bit. No timing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="passages to embed (SQuAD is cycled if it has fewer)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (fp16, as retriever.model loads it)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 256 on cuda, 64 on cpu")
    parser.add_argument("--prefetch", type=int, default=2, help="tokenised batches the pipeline keeps ready")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--squad", type=Path, default=None, help="a SQuAD JSON file (default: tests/data)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import numpy as np
    import torch

    from retriever.model import DEFAULT_MODEL, Encoder
    from retriever.pipelined_encode import default_prompt, embed_features, encode_order, encode_pipelined, tokenize

    texts = _passages(args.squad or _default_squad(), args.n)
    encoder = Encoder(DEFAULT_MODEL, device=args.device)
    model = encoder._model  # the very model a build uses: same load, same fp16 on cuda
    device = model.device
    batch = args.batch_size or (256 if device.type == "cuda" else 64)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def raw() -> Any:
        return encoder.encode(texts, batch_size=batch)

    def pipelined() -> Any:
        return encode_pipelined(model, texts, batch, prefetch=args.prefetch)

    order = encode_order(model, texts)
    ordered = [texts[i] for i in order]
    prompt = default_prompt(model)
    chunks = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]

    def tokenise_only() -> Any:
        return [tokenize(model, chunk, prompt) for chunk in chunks]

    features = tokenise_only()
    if device.type == "cuda":
        features = [{k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in f.items()} for f in features]

    def forward_only() -> Any:
        with torch.inference_mode():
            out = [embed_features(model, f, device) for f in features]
        sync()
        return out

    rates: dict[str, float] = {}
    for name, run in (
        ("model.encode (today)", raw),
        ("encode_pipelined", pipelined),
        ("tokenisation alone", tokenise_only),
        ("forward alone (pre-tokenised)", forward_only),
    ):
        rates[name] = len(texts) / _median_seconds(run, args.repeats, sync)
    identical = bool(np.array_equal(raw(), pipelined()))

    tok, fwd = rates["tokenisation alone"], rates["forward alone (pre-tokenised)"]
    rows = [(name, f"{rate:,.0f} passages/s") for name, rate in rates.items()]
    rows.append(("serial bound 1/(1/tok + 1/fwd)", f"{1 / (1 / tok + 1 / fwd):,.0f} passages/s"))
    rows.append(("overlap bound min(tok, fwd)", f"{min(tok, fwd):,.0f} passages/s"))
    speedup = rates["encode_pipelined"] / rates["model.encode (today)"]
    rows.append(("pipelined / encode", f"{speedup:.2f}x"))
    rows.append(("vectors bit-identical to encode", "yes" if identical else "NO"))

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    dtype = next(model.parameters()).dtype
    print(
        f"{len(texts):,} passages (mean {statistics.mean(len(t.split()) for t in texts):.0f} words), batch {batch}, "
        f"prefetch {args.prefetch}, median of {args.repeats}, {device} {str(dtype).removeprefix('torch.')}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} intra-op threads), load average {os.getloadavg()[0]:.1f}"
    )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(dict(rows), indent=2))


def _median_seconds(run: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of `run` after one untimed call (which pays for kernel selection and warm caches)."""
    run()
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _default_squad() -> Path:
    shared = Path(os.environ.get("GROUNDSEARCH_SHARED_DATA") or ROOT / "tests" / "data")
    return shared / "squad" / "squad-dev-v1.1-part-a.json"


def _passages(path: Path, n: int) -> list[str]:
    """`n` passage texts as a build embeds them: ~100-word passages of each paragraph, under its title."""
    from index_build.documents import Document, Section
    from index_build.passages import split_document
    from retriever.bundle import embedding_text

    if not path.is_file():
        raise SystemExit(f"no SQuAD file at {path}: pass --squad or set GROUNDSEARCH_SHARED_DATA")
    texts: list[str] = []
    for a, article in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
        title = article["title"].replace("_", " ").strip()  # as index_build.readers.squad shows it
        for p, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            document = Document(f"{a}.{p}", title, context, sections=(Section("", 0, len(context)),))
            for span in split_document(document):
                texts.append(embedding_text(title, span.section, context[span.start : span.end]))
    if not texts:
        raise SystemExit(f"{path} has no paragraphs")
    return [texts[i % len(texts)] for i in range(n)]


if __name__ == "__main__":
    main()
