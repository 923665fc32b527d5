"""Choose the FAISS index that fits a memory budget, in the spirit of autofaiss, and say what recall to expect.

A corpus of n passages at d = 384 dimensions costs 1,544 bytes a passage as `Flat` (float32 vector + id):
21 M Wikipedia passages are 32 GB. `--memory-budget 4GB` asks for the most accurate index whose whole file
(= its memory if fully read; memory-mapped, much less stays resident) fits, from this list, most accurate first:

- `Flat`: exact; 4d + 8 bytes a passage (up to FLAT_MAX passages, as without a budget).
- `IVF{nlist},Flat`: the same vectors in inverted lists, plus the centroids; recall set by the tuned nprobe.
- `IVF{nlist},SQ8`: one byte per dimension (d + 8 bytes a passage); almost lossless on these vectors.
- `IVF{nlist},PQ{m}np`: product quantization of the residuals, m one-byte codes (m + 8 bytes a passage), m from
  d/2 down to 32.

Left out, measured: OPQ rotations (`OPQ{m}_{d},...`) cost about 2 s per training iteration (50 of them) at
m = 32 on 20,000 vectors here, and far more at m = 192, for a rotation that matters little when sub-vectors are
2 to 4 dimensions wide; fast-scan `PQ192x4fs` (96-byte codes) measured 0.881 where `PQ96` (96 bytes) measured
0.915 (bench/codecs.py, real vectors).

Sizes are estimated from the layout FAISS writes (codes, 8-byte ids, centroids, codebooks, list headers);
tests check the estimate against real files. `expected_recall` is recall@10 against exact search at nprobe =
nlist / 4, from RECALL_TABLE, which bench/codecs.py measured (README "Scale"). The build's own tuning then
measures the real figure on the corpus (manifest `ann`), and picks the nprobe.

Sizes use binary units, as memory does: 4GB = 4 GiB = 4,294,967,296 bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from index_build.faiss_index import FLAT_MAX
from index_build.faults import BuildError

ID_BYTES = 8  # faiss.idx_t, stored beside every code
LIST_OVERHEAD = 16  # per inverted list: its size and the vector headers of codes and ids
FILE_OVERHEAD = 4096  # headers of the index and its quantizers
MAX_NLIST = 65536
PQ_SIZES = (192, 128, 96, 64, 48, 32)
PQ_TRAIN = 256  # centroids per sub-quantizer (8-bit codes)

# recall@10 vs exact search at nprobe = nlist / 4, measured by bench/codecs.py on real MiniLM vectors: the 1,023
# SQuAD contexts as the corpus (IVF16), 1,000 real SQuAD questions as queries. Keys are `Candidate.codec`.
RECALL_TABLE: dict[str, float] = {
    "Flat": 1.0,
    "IVF,Flat": 0.981,
    "IVF,SQ8": 0.978,
    "PQ192": 0.957,
    "PQ128": 0.934,
    "PQ96": 0.915,
    "PQ64": 0.877,
    "PQ48": 0.839,
    "PQ32": 0.802,
}

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


class BudgetError(BuildError):
    """No index fits the budget, or the budget is not a size."""


@dataclass(frozen=True)
class Candidate:
    factory: str
    codec: str  # the key into RECALL_TABLE
    bytes_per_vector: int
    fixed_bytes: int

    def size(self, n: int) -> int:
        return n * self.bytes_per_vector + self.fixed_bytes


@dataclass(frozen=True)
class Choice:
    """What the chooser picked, and why; `record()` is what the manifest keeps."""

    factory: str
    expected_bytes: int
    expected_recall: float
    budget_bytes: int
    why: str

    def record(self) -> dict[str, Any]:
        return asdict(self)


def parse_size(text: str) -> int:
    """Bytes in a size such as 4GB, 512MB, 1.5G, 300M, 4GiB or 1000000 (binary units: 1GB = 2**30 bytes)."""
    match = _SIZE.match(str(text))
    if not match:
        raise BudgetError(f"--memory-budget: {text!r} is not a size; write e.g. 4GB, 512MB or 1.5G")
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if value < 1:
        raise BudgetError(f"--memory-budget must be positive, got {text!r}")
    return int(value)


def format_size(n_bytes: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{int(n_bytes)} B"


def nlist_for(n: int, max_nlist: int = MAX_NLIST) -> int:
    """The power of two nearest 4 * sqrt(n) (the FAISS wiki's guideline, as index_build.faiss_index uses),
    at least 1 and at most `max_nlist` and n / 39 (FAISS wants 39 training points per list)."""
    nlist = 2 ** max(0, round(math.log2(max(1.0, 4 * math.sqrt(max(n, 1))))))
    while nlist > 1 and nlist * 39 > n:
        nlist //= 2
    return max(1, min(nlist, max_nlist))


def candidates(n: int, dimension: int, max_nlist: int = MAX_NLIST) -> list[Candidate]:
    """Every candidate for n vectors of `dimension`, most accurate first."""
    d = dimension
    nlist = nlist_for(n, max_nlist)
    ivf_fixed = FILE_OVERHEAD + nlist * (d * 4 + LIST_OVERHEAD)
    # Exact search only where index_build.faiss_index would choose it too (FLAT_MAX): beyond, a brute-force
    # scan per query is too slow however much memory there is.
    found = [Candidate("Flat", "Flat", d * 4 + ID_BYTES, FILE_OVERHEAD)] if n <= FLAT_MAX else []
    found += [
        Candidate(f"IVF{nlist},Flat", "IVF,Flat", d * 4 + ID_BYTES, ivf_fixed),
        Candidate(f"IVF{nlist},SQ8", "IVF,SQ8", d + ID_BYTES, ivf_fixed + 2 * d * 4),
    ]
    for m in PQ_SIZES:
        if d % m or m >= d or n < PQ_TRAIN:
            continue
        # The codebooks: PQ_TRAIN centroids of d / m floats for each of the m sub-vectors. "np": no polysemous
        # training, which only serves Hamming-distance filtering (unused here) and took 28 s of 29 to train
        # IVF128,PQ32 on 5,000 vectors here.
        found.append(Candidate(f"IVF{nlist},PQ{m}np", f"PQ{m}", m + ID_BYTES, ivf_fixed + PQ_TRAIN * d * 4))
    return found


def choose_for_budget(n: int, dimension: int, budget_bytes: int, max_nlist: int = MAX_NLIST) -> Choice:
    """The most accurate candidate whose estimated file fits `budget_bytes`; BudgetError if none does."""
    if n < 1:
        raise BudgetError("--memory-budget needs a corpus with at least one passage")
    options = candidates(n, dimension, max_nlist)
    for rank, option in enumerate(options):
        size = option.size(n)
        if size <= budget_bytes:
            recall = RECALL_TABLE.get(option.codec, 0.0)
            better = (
                f"; {options[rank - 1].factory} would need {format_size(options[rank - 1].size(n))}" if rank else ""
            )
            why = (
                f"{option.factory}: about {format_size(size)} for {n:,} passages "
                f"({option.bytes_per_vector} bytes each), within the {format_size(budget_bytes)} budget{better}; "
                f"expected recall@10 about {recall:.2f} (bench/codecs.py, real vectors)"
            )
            return Choice(option.factory, size, recall, budget_bytes, why)
    smallest = min(options, key=lambda c: c.size(n))
    raise BudgetError(
        f"no index of {n:,} passages fits in {format_size(budget_bytes)}: the smallest, {smallest.factory}, "
        f"needs about {format_size(smallest.size(n))}"
    )
