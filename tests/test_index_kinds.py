"""Index kinds and build options that the default small corpus does not reach on its own.

These use the tiny random-weight model: they check plumbing (IVF search parameters, skipped errors,
worker pools), not retrieval quality, which tests/test_build_and_search.py checks with the real model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE

from index_build import BuildOptions, RunOptions, build_index
from retriever import InvalidQuery, ModelUnavailable, Retriever
from retriever.model import Encoder

QUERIES = ["hotel", "gunpowder incident in Virginia", "complex manifold", "block copolymer", "television series"]
QUIET = RunOptions(progress=False, workers=1)


@pytest.fixture(scope="module")
def flat_and_ivf(tmp_path_factory: pytest.TempPathFactory, corpus_xml: Path, tiny_model: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kinds")
    flat, ivf = root / "flat.idx", root / "ivf.idx"
    build_index([corpus_xml], flat, BuildOptions(model=str(tiny_model)), QUIET)
    build_index([corpus_xml], ivf, BuildOptions(model=str(tiny_model), index_factory="IVF8,Flat"), QUIET)
    return flat, ivf


def test_ivf_index_visiting_every_list_equals_exact_search(flat_and_ivf: tuple[Path, Path]) -> None:
    flat, ivf = (Retriever.open(p) for p in flat_and_ivf)
    assert ivf.manifest.faiss_factory == "IVF8,Flat" and ivf.manifest.ann is not None
    assert ivf.manifest.search_params == ivf.manifest.ann["params"] and ivf.manifest.ann["met"]
    exact = flat.search_batch(QUERIES, k=10, mode="dense")
    every_list = ivf.search_batch(QUERIES, k=10, mode="dense", nprobe=8)
    assert [[h.passage_id for h in hits] for hits in every_list] == [[h.passage_id for h in hits] for hits in exact]
    one_list = ivf.search_batch(QUERIES, k=10, mode="dense", nprobe=1)
    assert all(len(hits) >= 1 for hits in one_list)  # fewer lists visited: still answers, possibly fewer hits
    with pytest.raises(InvalidQuery, match="nprobe"):
        ivf.search("hotel", nprobe=0)


def test_skip_errors_keeps_the_articles_before_a_truncation(tmp_path: Path, tiny_model: Path) -> None:
    cut = tmp_path / "cut.xml.bz2"
    data = SAMPLE.read_bytes()  # several bz2 blocks, so the first ones still decompress
    cut.write_bytes(data[: len(data) * 3 // 4])
    report = build_index([cut], tmp_path / "cut.idx", BuildOptions(model=str(tiny_model), skip_errors=True), QUIET)
    assert report.errors_skipped == 1
    assert 0 < report.manifest.documents < 106
    stats = report.manifest.extra["reader_stats"][str(cut)]
    assert stats["errors_skipped"] == 1 and stats["documents"] == report.manifest.documents


def test_pooled_build_through_python_dash_m(tmp_path: Path, corpus_xml: Path, tiny_model: Path) -> None:
    """Two parsing workers started from `python -m groundsearch` (the pool may re-import the main module)."""
    out = tmp_path / "pooled.idx"
    command = [sys.executable, "-m", "groundsearch", "build", str(corpus_xml), "--out", str(out),
               "--model", str(tiny_model), "--workers", "2"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "68 documents" in proc.stdout
    assert "reading" in proc.stderr and "embedding" in proc.stderr and "passage/s" in proc.stderr  # progress


def test_unknown_hub_model_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="cannot load model 'nobody/no-such-model'"):
        Encoder("nobody/no-such-model")


def test_invalid_factory_string_is_a_clear_error(tmp_path: Path, corpus_xml: Path, tiny_model: Path) -> None:
    from index_build import BuildError

    with pytest.raises(BuildError, match="invalid FAISS factory string 'Nonsense42'"):
        build_index(
            [corpus_xml], tmp_path / "x.idx", BuildOptions(model=str(tiny_model), index_factory="Nonsense42"), QUIET
        )
