"""What resuming a killed read or FAISS stage costs at scale, one stage at a time, with nothing embedded.

    .venv/bin/python bench/resume_stages.py read --copies 40 --work /tmp/gs-resume-read
    .venv/bin/python bench/resume_stages.py faiss --n 1000000 --factory IVF4096,SQ8 --add-block 200000 \\
        --work /tmp/gs-resume-faiss

read: a MediaWiki dump made of --copies copies of the shipped sample's pages (real wikitext, bz2) is read
into a store by `index_build.read_stage.read_corpora` in a subprocess, uninterrupted; then again, SIGKILLed
once the store's checkpoint covers half the articles, and rerun. faiss: `build_faiss` over --n synthetic
vectors shaped like MiniLM's (bench/synthetic.py), uninterrupted; then again, SIGKILLed once --kill-after
blocks are saved, and rerun. Each rerun is timed beside the uninterrupted run and checked for an identical
result (store rows; FAISS bytes). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from resume import killed_at

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

READ = """
import sys
from pathlib import Path
from index_build.read_stage import read_corpora
from index_build.readers import open_corpus
read_corpora([open_corpus(sys.argv[1], workers=int(sys.argv[3]))], Path(sys.argv[2]), 100, progress=False)
"""

FAISS = """
import sys
from pathlib import Path
import faiss
from index_build.faiss_index import build_faiss
shards = sorted(Path(sys.argv[1]).glob("shard-*.npy"))
index = build_faiss(shards, 384, sys.argv[2], [], Path(sys.argv[3]), int(sys.argv[4]))
faiss.write_index(index, sys.argv[5])
"""


def run(code: str, *args: object) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, cwd=ROOT)
    return time.perf_counter() - began


def killed(code: str, args: list[object], ready: Callable[[], bool]) -> float:
    """Run until `ready()`, then SIGKILL (bench/resume.py's killed_at); the seconds it ran."""
    return killed_at([sys.executable, "-c", code, *map(str, args)], ready)


def make_dump(path: Path, copies: int) -> None:
    """The sample's <page> elements `copies` times over, inside its own header: real wikitext, at size."""
    text = bz2.decompress(SAMPLE.read_bytes()).decode("utf-8")
    head, rest = text.split("<page>", 1)
    pages = "<page>" + rest.rsplit("</mediawiki>", 1)[0]
    with bz2.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write(head)
        for _ in range(copies):
            out.write(pages)
        out.write("</mediawiki>\n")


def progress_documents(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.1) as db:
            return int(db.execute("SELECT documents FROM build_progress").fetchone()[0])
    except sqlite3.Error:
        return 0


def rows_digest(store: Path) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(store) as db:
        for table in ("documents", "passages"):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY id"):  # noqa: S608 - our two table names
                digest.update(repr(row).encode())
    return digest.hexdigest()


def bench_read(args: argparse.Namespace) -> list[str]:
    dump = args.work / "dump.xml.bz2"
    if not dump.exists():
        make_dump(dump, args.copies)
    full, partial = args.work / "full.sqlite", args.work / "killed.sqlite"
    for path in (full, partial):
        path.unlink(missing_ok=True)
    full_s = run(READ, dump, full, args.workers)
    with sqlite3.connect(full) as db:
        articles = int(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        passages = int(db.execute("SELECT COUNT(*) FROM passages").fetchone()[0])
    ran = killed(READ, [dump, partial, args.workers], lambda: progress_documents(partial) >= articles // 2)
    kept = progress_documents(partial)
    rerun_s = run(READ, dump, partial, args.workers)
    same = rows_digest(full) == rows_digest(partial)
    return [
        f"dump: {args.copies} copies of the sample, {dump.stat().st_size / 2**20:.0f} MiB bz2, "
        f"{articles:,} articles, {passages:,} passages; {args.workers} cleaning workers",
        "| stage | uninterrupted | killed after | kept | rerun | rerun / uninterrupted | identical |",
        "|---|---|---|---|---|---|---|",
        f"| read | {full_s:.1f} s | {ran:.1f} s | {kept:,} of {articles:,} articles | {rerun_s:.1f} s "
        f"| {rerun_s / full_s:.2f} | {same} |",
    ]


def bench_faiss(args: argparse.Namespace) -> list[str]:
    sys.path.insert(0, str(ROOT / "bench"))
    import numpy as np
    from synthetic import Mixture, real_vectors

    from index_build.faiss_index import saved_blocks

    shard_dir = args.work / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    mixture = None
    for i, first in enumerate(range(0, args.n, args.shard_size)):
        path = shard_dir / f"shard-{i:05d}.npy"
        if not path.exists():
            mixture = mixture or Mixture(real_vectors(args.work / "real-squad.npy"))
            np.save(path, mixture.sample(min(args.shard_size, args.n - first), 1_000_003 + i))
    parts, full, resumed = args.work / "parts", args.work / "full.faiss", args.work / "resumed.faiss"
    shutil.rmtree(parts, ignore_errors=True)
    full_s = run(FAISS, shard_dir, args.factory, parts, args.add_block, full)
    shutil.rmtree(parts)

    ran = killed(
        FAISS, [shard_dir, args.factory, parts, args.add_block, resumed], lambda: saved_blocks(parts) >= args.kill_after
    )
    kept = saved_blocks(parts)
    rerun_s = run(FAISS, shard_dir, args.factory, parts, args.add_block, resumed)
    blocks = saved_blocks(parts)
    same = full.read_bytes() == resumed.read_bytes()
    return [
        f"{args.n:,} synthetic 384-d vectors, {args.factory}, blocks of {args.add_block:,} ({blocks} blocks)",
        "| stage | uninterrupted | killed after | kept | rerun | rerun / uninterrupted | identical |",
        "|---|---|---|---|---|---|---|",
        f"| FAISS train + add | {full_s:.1f} s | {ran:.1f} s | training + {kept} of {blocks} blocks | {rerun_s:.1f} s "
        f"| {rerun_s / full_s:.2f} | {same} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["read", "faiss"])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=40, help="read: copies of the sample's pages")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="read: cleaning processes")
    parser.add_argument("--n", type=int, default=1_000_000, help="faiss: vectors")
    parser.add_argument("--shard-size", type=int, default=100_000)
    parser.add_argument("--factory", default="IVF4096,SQ8")
    parser.add_argument("--add-block", type=int, default=200_000)
    parser.add_argument("--kill-after", type=int, default=3, help="faiss: saved blocks before the kill")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    lines = bench_read(args) if args.stage == "read" else bench_faiss(args)
    print(f"load average {os.getloadavg()[0]:.1f} at the end; {os.cpu_count()} cores")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
