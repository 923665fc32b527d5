"""What the splitter made of a corpus: passage-length percentiles, what was merged, and what was flagged.

`build` prints it as a table and stores it in the manifest's `extra["passages"]` (absent from bundles built
before it existed; nothing reads it back but `info`-style reports, so older manifests stay readable as they are):

    {"target_words": 100, "min_words": 20,
     "chars": {"min": .., "p1": .., "p5": .., "p25": .., "p50": .., "p75": .., "p95": .., "p99": .., "max": ..},
     "words": {... the same keys ...},
     "passages": N, "under_min_words": n,   # passages shorter than the minimum: whole short articles only
     "merged": n,                           # short pieces joined to a neighbour (None: not counted, resumed)
     "flagged": {"disambiguation": n, "list": n}}  # navigation pages, indexed with documents.kind set

Navigation pages are flagged, not skipped (index_build.readers.page_kinds says why), so nothing is counted
as skipped here; the readers' own skip counts (redirects, empty pages) are in `extra.reader_stats`. Lengths
are read back from the finished store in one pass (about a minute per 10 M passages).
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from index_build.passages import min_words

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("min", 0), ("p1", 1), ("p5", 5), ("p25", 25), ("p50", 50), ("p75", 75), ("p95", 95), ("p99", 99), ("max", 100),
)  # fmt: skip


def passage_stats(
    store: Path, target_words: int, merged: int | None, reader_stats: Mapping[str, Mapping[str, int]]
) -> dict[str, Any]:
    """The figures above for a finished store file; `reader_stats` are the readers' counters by corpus path."""
    chars, words = array("I"), array("I")  # 8 bytes a passage, not a list's 60: 21 M passages fit
    with closing(sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        for (text,) in conn.execute("SELECT text FROM passages"):
            chars.append(len(text))
            words.append(len(text.split()))
    minimum = min_words(target_words)
    return {
        "target_words": target_words,
        "min_words": minimum,
        "chars": _percentiles(chars),
        "words": _percentiles(words),
        "passages": len(chars),
        "under_min_words": sum(1 for w in words if w < minimum),
        "merged": merged,
        "flagged": {
            kind: sum(int(s.get(f"{kind}_flagged", 0)) for s in reader_stats.values())
            for kind in ("disambiguation", "list")
        },
    }


def _percentiles(values: array[int]) -> dict[str, int]:
    if not values:
        return {}
    lengths = np.frombuffer(values, dtype=np.uint32)
    # "inverted_cdf": each figure is a length some passage really has, not an interpolation between two.
    return {name: int(np.percentile(lengths, q, method="inverted_cdf")) for name, q in PERCENTILES}


def format_passage_stats(stats: Mapping[str, Any]) -> str:
    """The figures as the few lines `build` prints."""
    header = "passage length  " + " ".join(f"{name:>6}" for name, _ in PERCENTILES)
    lines = [header]
    for unit in ("chars", "words"):
        row = stats.get(unit) or {}
        lines.append(f"  {unit:<14}" + " ".join(f"{row.get(name, 0):>6,}" for name, _ in PERCENTILES))
    merged = stats.get("merged")
    flagged = stats.get("flagged", {})
    lines.append(
        f"short pieces merged into a neighbour: {'not counted' if merged is None else f'{merged:,}'} "
        f"(minimum {stats.get('min_words')} words; {stats.get('under_min_words', 0):,} shorter passages, "
        "each a whole article)"
    )
    lines.append(
        f"navigation pages flagged: {flagged.get('disambiguation', 0):,} disambiguation, "
        f"{flagged.get('list', 0):,} list-only (indexed; their hits say so)"
    )
    return "\n".join(lines)
