"""What a killed build costs: SIGKILL `groundsearch build` at a stage, run the same command again, time it.

    .venv/bin/python bench/resume.py data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2

For each kill point the rerun's time is set beside an uninterrupted build's, with the stages the rerun kept
and whether its FAISS file is byte-identical to the uninterrupted one. Kill points: "reading" (the store is
being written), "embedding" (half of the embedding shards are on disk). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GROUNDSEARCH = [sys.executable, "-m", "groundsearch"]


def build_command(corpus: Path, out: Path, shard_size: int) -> list[str]:
    return [*GROUNDSEARCH, "build", str(corpus), "--out", str(out), "--shard-size", str(shard_size), "--quiet"]


def timed_build(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout.strip()


def killed_at(command: list[str], ready: Callable[[], bool], timeout: float = 3600) -> float:
    """Start the build, SIGKILL it (its whole process group) once `ready()`; seconds it had run."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None and not ready():
        if time.perf_counter() - started > timeout:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        raise SystemExit("the build finished before the kill point; use a larger corpus or a smaller --shard-size")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return time.perf_counter() - started


def faiss_sha(index: Path) -> str:
    return str(json.loads((index / "manifest.json").read_text(encoding="utf-8"))["files"]["faiss"]["sha256"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--shard-size", type=int, default=512)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="groundsearch-resume-") as tmp:
        work = Path(tmp)
        full_s, _ = timed_build(build_command(args.corpus, work / "full.idx", args.shard_size))
        passages = json.loads((work / "full.idx" / "manifest.json").read_text(encoding="utf-8"))["passages"]
        shards_total = math.ceil(passages / args.shard_size)
        rows = []
        for point in ("reading", "embedding"):
            out = work / f"{point}.idx"
            staging = out.with_name(out.name + ".partial")

            def ready(point: str = point, staging: Path = staging) -> bool:
                if point == "reading":
                    return (staging / "passages.sqlite.partial").exists()
                shards = staging / "shards"
                return shards.is_dir() and len(list(shards.glob("shard-*.npy"))) >= max(1, shards_total // 2)

            command = build_command(args.corpus, out, args.shard_size)
            ran = killed_at(command, ready)
            rerun_s, said = timed_build(command)
            kept = said.split("(resumed: ", 1)[1].split(" kept)")[0] if "(resumed: " in said else "nothing"
            same = faiss_sha(out) == faiss_sha(work / "full.idx")
            rows.append((point, ran, rerun_s, kept, same))
            shutil.rmtree(out)

    print(f"corpus: {args.corpus.name}, {passages:,} passages, {shards_total} shards of {args.shard_size}")
    print(f"uninterrupted build: {full_s:.1f} s; load average {os.getloadavg()[0]:.1f} at the end")
    print("| killed during | after | rerun | rerun / uninterrupted | stages kept | FAISS file identical |")
    print("|---|---|---|---|---|---|")
    for point, ran, rerun_s, kept, same in rows:
        print(f"| {point} | {ran:.1f} s | {rerun_s:.1f} s | {rerun_s / full_s:.2f} | {kept} | {same} |")


if __name__ == "__main__":
    main()
