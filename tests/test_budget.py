"""`--memory-budget` picks the most accurate index that fits, the estimate matches the file FAISS writes,
memory-mapped reading answers exactly like a plain read, and `info` shows resident memory against file size.

The build test uses the real model over real articles (425 passages); the size and mmap tests use seeded
random unit vectors, since they check bytes and identical results, not retrieval quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from groundsearch.cli import app
from index_build.budget import BudgetError, candidates, choose_for_budget, nlist_for, parse_size
from retriever.bundle import FAISS_NAME, read_manifest
from retriever.faiss_io import faiss_memory, ivf_of, read_faiss

GIB = 1 << 30
runner = CliRunner()


def unit_vectors(n: int, d: int = 384, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    faiss.normalize_L2(x)
    return x


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4GB", 4 * GIB), ("512MB", 512 << 20), ("1.5G", int(1.5 * GIB)), ("4GiB", 4 * GIB), ("300k", 300 << 10),
     ("1000", 1000), (" 2 gb ", 2 * GIB)],
)  # fmt: skip
def test_sizes_parse_in_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("junk", ["", "four GB", "4XB", "-1GB", "0", "GB", "1e9"])
def test_junk_sizes_are_one_line_errors(junk: str) -> None:
    with pytest.raises(BudgetError, match="memory-budget"):
        parse_size(junk)


def test_larger_budgets_choose_more_accurate_indexes_that_fit() -> None:
    for n in (425, 1_000_000, 10_000_000, 21_000_000):
        order = [c.factory for c in candidates(n, 384)]
        previous_rank, previous_recall = len(order), 0.0
        for budget in (GIB // 4, GIB, 4 * GIB, 16 * GIB, 64 * GIB):
            try:
                choice = choose_for_budget(n, 384, budget)
            except BudgetError as exc:
                assert "the smallest" in str(exc) and "\n" not in str(exc)
                continue
            assert choice.expected_bytes <= budget
            assert order.index(choice.factory) <= previous_rank and choice.expected_recall >= previous_recall
            previous_rank, previous_recall = order.index(choice.factory), choice.expected_recall
    assert choose_for_budget(1_000, 384, GIB).factory == "Flat"
    assert choose_for_budget(10_000_000, 384, 4 * GIB).factory == "IVF16384,SQ8"
    assert choose_for_budget(21_000_000, 384, 4 * GIB).factory.endswith(",PQ192np")
    with pytest.raises(BudgetError, match=r"no index of 21,000,000 passages fits in 100.00 MiB: the smallest"):
        choose_for_budget(21_000_000, 384, 100 << 20)


def test_size_estimates_match_the_files_faiss_writes(tmp_path: Path) -> None:
    n, d = 5_000, 128  # the layout is the same at any dimension; 128 keeps PQ training quick
    x = unit_vectors(n, d)
    wanted = {"IVF,Flat", "IVF,SQ8", "PQ32"}
    for option in [c for c in candidates(n, d) if c.codec in wanted]:
        index = faiss.index_factory(d, option.factory, faiss.METRIC_INNER_PRODUCT)
        index.train(x)
        index.add_with_ids(x, np.arange(n, dtype=np.int64))
        faiss.write_index(index, str(tmp_path / "x.faiss"))
        size = (tmp_path / "x.faiss").stat().st_size
        assert abs(option.size(n) - size) <= 0.02 * size, (option.factory, option.size(n), size)
    assert nlist_for(5_000) == 128 and nlist_for(10_000_000) == 16384 and nlist_for(10) == 1


def test_memory_mapped_reads_answer_exactly_like_plain_reads(tmp_path: Path) -> None:
    x, queries = unit_vectors(4_000), unit_vectors(50, seed=1)
    for factory in ("IVF64,SQ8", "IVF64,Flat", "IVF64,PQ8", "Flat"):
        index = faiss.index_factory(384, factory, faiss.METRIC_INNER_PRODUCT)
        if ivf_of(index) is None:
            index = faiss.IndexIDMap2(index)
        index.train(x)
        index.add_with_ids(x, np.arange(len(x), dtype=np.int64))
        path = tmp_path / f"{factory.replace(',', '_')}.faiss"
        faiss.write_index(index, str(path))
        mapped, plain = read_faiss(path), read_faiss(path, mmap=False)
        if ivf_of(mapped) is not None:
            assert type(faiss.downcast_InvertedLists(ivf_of(mapped).invlists)).__name__ == "OnDiskInvertedLists"
        params = faiss.SearchParametersIVF(nprobe=8) if ivf_of(mapped) is not None else None  # type: ignore[call-arg]
        got, want = mapped.search(queries, 10, params=params), plain.search(queries, 10, params=params)
        assert (got[1] == want[1]).all() and np.array_equal(got[0], want[0]), factory


def test_build_with_a_memory_budget_fits_it_and_records_the_choice(tmp_path: Path, corpus_xml: Path) -> None:
    out = tmp_path / "budget.idx"
    budget = "250KB"  # Flat (about 690 KB) and IVF,Flat do not fit; IVF8,SQ8 (about 195 KB) does
    command = ["build", str(corpus_xml), "--out", str(out), "--memory-budget", budget, "--no-lexical", "--quiet"]
    result = runner.invoke(app, [*command, "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "memory budget: IVF8,SQ8" in result.output
    manifest = read_manifest(out)
    assert manifest.faiss_factory == "IVF8,SQ8"
    size = (out / FAISS_NAME).stat().st_size
    assert size <= parse_size(budget)
    recorded = manifest.extra["memory_budget"]
    assert recorded["factory"] == "IVF8,SQ8" and recorded["budget_bytes"] == parse_size(budget)
    assert abs(recorded["expected_bytes"] - size) <= 0.05 * size and 0 < recorded["expected_recall"] <= 1
    assert manifest.ann is not None and 0 < manifest.ann["recall@10"] <= 1  # measured by the build's tuning

    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0, info.output
    line = next(row for row in info.output.splitlines() if row.startswith("memory"))
    assert "memory-mapped" in line and "file 0.2 MiB" in line
    memory = json.loads(runner.invoke(app, ["info", str(out), "--json"]).output)["faiss_memory"]
    assert memory["file_bytes"] == size and memory["memory_mapped"]
    assert faiss_memory(out / FAISS_NAME)["resident_bytes"] < 8 << 20


def test_budget_errors_are_one_line(tmp_path: Path, corpus_xml: Path) -> None:
    base = ["build", str(corpus_xml), "--out", str(tmp_path / "x.idx"), "--no-lexical", "--quiet"]
    for extra, message in [
        (["--memory-budget", "lots"], "error: --memory-budget: 'lots' is not a size"),
        (["--memory-budget", "4GB", "--index", "Flat"], "error: give --index or --memory-budget, not both"),
    ]:
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 1 and result.output.startswith(message), result.output
        assert result.output.count("\n") == 1
    assert not (tmp_path / "x.idx").exists()
