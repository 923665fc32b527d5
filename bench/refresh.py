"""What refreshing an index from next month's dump costs: `build --reuse` against a build from scratch.

    .venv/bin/python bench/refresh.py data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2

The dump given is "last month's"; "this month's" is made from it by bench/month_edits.py (`--share` of its
articles, 5% by default, with a few sentences changed in a few sections). Three builds, in this process, with the
CLI's defaults (ONNX export included): last month from scratch (the bundle to reuse), this month from scratch,
this month with `--reuse` of last month's bundle. Each build stage is timed (index_build.stages.STAGES wrapped),
so a build's embedding time is its embed stage. Prints one table; checks that the refreshed bundle equals the
scratch one (store rows, vectors to float rounding, top-10 answers) and exits 1 where it does not. The target
printed is the issue's: refresh time <= 1.5 x (changed share x scratch embedding + the scratch build's other
stages).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from month_edits import edit_dump  # noqa: E402

QUERY_WORDS = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--share", type=float, default=0.05, help="share of articles edited (0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=200, help="passage openings asked of both bundles")
    parser.add_argument("--work", type=Path, help="keep the dumps and bundles here (default: a temporary folder)")
    args = parser.parse_args()

    import index_build.stages as stages
    from index_build import BuildOptions, RunOptions, build_index
    from retriever import Retriever
    from retriever.bundle import STORE_NAME, VECTORS_F32_NAME
    from retriever.diff import diff_bundles

    times: dict[str, float] = defaultdict(float)
    stages.STAGES = tuple(_timed(stage, times) for stage in stages.STAGES)

    def build(corpus: Path, out: Path, reuse: tuple[Path, ...] = ()) -> tuple[float, dict[str, float], dict]:
        times.clear()
        started = time.perf_counter()
        report = build_index([corpus], out, BuildOptions(), RunOptions(progress=False, reuse=reuse), force=True)
        return time.perf_counter() - started, dict(times), report.manifest.extra["vectors"]

    with tempfile.TemporaryDirectory(prefix="groundsearch-refresh-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        new_dump = work / "next-month.xml.bz2"
        edits = edit_dump(args.corpus, new_dump, args.share, args.seed)
        load = os.getloadavg()[0]
        old_s, old_stages, _ = build(args.corpus, work / "last-month.idx")
        scratch_s, scratch_stages, _ = build(new_dump, work / "scratch.idx")
        refresh_s, refresh_stages, vectors = build(new_dump, work / "refresh.idx", (work / "last-month.idx",))
        load_after = os.getloadavg()[0]

        changes = diff_bundles(work / "last-month.idx", work / "refresh.idx")
        same_store = _rows(work / "refresh.idx" / STORE_NAME) == _rows(work / "scratch.idx" / STORE_NAME)
        got, want = (np.load(work / name / VECTORS_F32_NAME) for name in ("refresh.idx", "scratch.idx"))
        largest = float(np.abs(got - want).max())
        fresh, reference = Retriever.open(work / "refresh.idx"), Retriever.open(work / "scratch.idx")
        queries = _openings(work / "scratch.idx" / STORE_NAME, args.queries)
        answers = [r.search_batch(queries, k=10, mode="dense") for r in (fresh, reference)]
        same_top = sum([h.passage_id for h in a] == [h.passage_id for h in b] for a, b in zip(*answers, strict=True))

    passages = vectors["reused"] + vectors["encoded"]
    changed = vectors["encoded"] / passages
    embed, refresh_embed = scratch_stages["embed"], refresh_stages["embed"]
    target = 1.5 * (changed * embed + (scratch_s - embed))
    rows = [
        ("edits", f"{len(edits.titles)} of {edits.articles} articles ({args.share:.0%}), {edits.sentences} sentences"),
        (
            "diff",
            f"{changes.articles_changed.count} articles changed; passages {changes.passages_added} added, "
            f"{changes.passages_removed} removed, {changes.passages_unchanged} unchanged",
        ),
        ("scratch build, last month's dump", f"{old_s:.1f} s (embedding {old_stages['embed']:.1f} s)"),
        ("scratch build, this month's dump", f"{scratch_s:.1f} s"),
        ("  its embedding", f"{embed:.1f} s ({passages / embed:.1f} passages/s)"),
        ("  its other stages", f"{scratch_s - embed:.1f} s ({_others(scratch_stages)})"),
        ("refresh (`--reuse` last month's bundle)", f"{refresh_s:.1f} s ({_others(refresh_stages, every=True)})"),
        ("passages reused / encoded", f"{vectors['reused']:,} / {vectors['encoded']:,} ({changed:.1%} encoded)"),
        ("encode time saved", f"{embed - refresh_embed:.1f} s of {embed:.1f} s ({1 - refresh_embed / embed:.1%})"),
        ("end-to-end speedup", f"{scratch_s / refresh_s:.2f}x"),
        ("target: refresh <= 1.5 x (share x embedding + other stages)", f"{target:.1f} s: {_met(refresh_s <= target)}"),
        ("refresh equals scratch", f"store rows {_yes(same_store)}; vectors max |diff| {largest:.2g}"),
        ("  top-10 dense answers identical", f"{same_top} of {len(queries)} queries"),
        ("load average before / after", f"{load:.2f} / {load_after:.2f}"),
    ]
    width = max(len(key) for key, _ in rows)
    print(f"| {'':<{width}} | |\n|{'-' * (width + 2)}|---|")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")
    if not (same_store and largest < 1e-4 and same_top == len(queries)):
        raise SystemExit("the refreshed bundle differs from the scratch build")


def _timed(stage: Callable, times: dict[str, float]) -> Callable:
    def run(state: object, job: object) -> object:
        started = time.perf_counter()
        try:
            return stage(state, job)
        finally:
            times[stage.__name__] += time.perf_counter() - started

    return run


def _others(stages: dict[str, float], every: bool = False) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in stages.items() if every or name != "embed")


def _rows(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT * FROM documents").fetchall() + db.execute("SELECT * FROM passages").fetchall()


def _openings(store: Path, n: int) -> list[str]:
    """Question-sized queries: the first words of passages spread over the corpus."""
    with sqlite3.connect(store) as db:
        texts = [text for (text,) in db.execute("SELECT text FROM passages ORDER BY id")]
    step = max(1, len(texts) // n)
    return [" ".join(text.split()[:QUERY_WORDS]) for text in texts[::step][:n]]


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _yes(ok: bool) -> str:
    return "identical" if ok else "DIFFER"


if __name__ == "__main__":
    main()
