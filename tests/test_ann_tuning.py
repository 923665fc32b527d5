"""Approximate indexes are honest: the build tunes nprobe/efSearch to a measured recall@10 against exact search,
queries can override it, and `groundsearch eval` reports the index's own recall on the evaluation's questions.

Real model, real articles (68 articles, 425 passages); the figures are recomputed here independently, with
numpy brute force over the vectors the index stores, rather than trusted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from conftest import CORPUS_QUESTIONS
from typer.testing import CliRunner

from evaluation import Question, evaluate
from evaluation.ann import AnnRecall, ann_recall, exact_blocks
from groundsearch.cli import app
from index_build import BuildError, BuildOptions, RunOptions, build_index
from index_build.tuning import MISS_TOLERANCE, PLATEAU_GAIN, PLATEAU_STEPS, sample_ids, tune_search
from retriever import InvalidQuery, Retriever
from retriever.faiss_io import hnsw_of, ivf_of

QUIET = RunOptions(progress=False, workers=1)
QUESTIONS = CORPUS_QUESTIONS
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, corpus_xml: Path) -> dict[str, Path]:
    """One IVF and one HNSW bundle over the same corpus (about 20 s each)."""
    root = tmp_path_factory.mktemp("ann")
    out = {"ivf": root / "ivf.idx", "hnsw": root / "hnsw.idx"}
    build_index([corpus_xml], out["ivf"], BuildOptions(index_factory="IVF16,Flat", lexical=False), QUIET)
    build_index([corpus_xml], out["hnsw"], BuildOptions(index_factory="HNSW16", lexical=False), QUIET)
    return out


@pytest.fixture(scope="module")
def opened(built: dict[str, Path]) -> dict[str, Retriever]:
    return {kind: Retriever.open(path) for kind, path in built.items()}


def stored_vectors(index: Any) -> np.ndarray:
    """Every stored vector in passage-id order, read back from the index (IVF*,Flat and HNSW store them as is)."""
    ivf = ivf_of(index)
    if ivf is not None:
        # Straight from the inverted lists: the retriever maps them from the file (OnDiskInvertedLists), which
        # FAISS cannot clone.
        lists, out = ivf.invlists, np.zeros((index.ntotal, index.d), dtype=np.float32)
        for number in range(ivf.nlist):
            if size := lists.list_size(number):
                ids = faiss.rev_swig_ptr(lists.get_ids(number), size).copy()
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * lists.code_size).copy()
                out[ids] = codes.view(np.float32).reshape(size, index.d)
        return out
    ids = faiss.vector_to_array(index.id_map)
    assert (ids == np.arange(len(ids))).all()
    return np.asarray(hnsw_of(index).storage.reconstruct_n(0, index.ntotal))


def opening_vectors(retriever: Retriever) -> np.ndarray:
    """The build's tuning queries, made here again: the first 16 words of every passage (425 < 1,000)."""
    texts = [" ".join(retriever.get(pid).text.split()[:16]) for pid in range(len(retriever))]
    return np.asarray(retriever.encode(texts))


def numpy_recall(index: Any, vectors: np.ndarray, queries: np.ndarray, params: Any, k: int = 10) -> float:
    """recall@10 of `queries` against numpy brute force over the stored vectors (independent of
    index_build.tuning, which streams FAISS knn over shards and merges running top-k lists)."""
    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]
    found = index.search(queries, k, params=params)[1]
    return float(np.mean([len(set(want) & set(got)) / k for want, got in zip(exact, found, strict=True)]))


def self_excluded_recall(vectors: np.ndarray, found: Any, k: int = 10) -> float:
    exact = np.argsort(-(vectors @ vectors.T), axis=1, kind="stable")[:, : k + 1]
    shares = []
    for own, (want, got) in enumerate(zip(exact, found, strict=True)):
        want_k = [p for p in want if p != own][:k]
        got_k = [p for p in got if p >= 0 and p != own][:k]
        shares.append(len(set(want_k) & set(got_k)) / k)
    return float(np.mean(shares))


def make_params(name: str, value: int) -> Any:
    if name == "nprobe":
        return faiss.SearchParametersIVF(nprobe=value)
    return faiss.SearchParametersHNSW(efSearch=value)


@pytest.mark.parametrize("kind,knob", [("ivf", "nprobe"), ("hnsw", "efSearch")])
def test_build_records_the_smallest_value_that_meets_the_target(
    opened: dict[str, Retriever], kind: str, knob: str
) -> None:
    manifest = opened[kind].manifest
    ann = manifest.ann
    assert ann is not None and ann["met"] and ann["target"] == 0.95
    assert ann["queries"] == 425  # fewer passages than the 1,000 default: every passage's opening is a query
    assert ann["queries_from"] == "the first 16 words of sampled passages"
    assert set(manifest.search_params) == {knob} and ann["params"] == manifest.search_params
    chosen = manifest.search_params[knob]
    values = [value for value, _ in ann["tried"]]
    assert values == sorted(values) and values[-1] == chosen
    assert ann["recall@10"] == ann["tried"][-1][1] >= 0.95
    assert all(recall < 0.95 for _, recall in ann["tried"][:-1])  # every smaller value missed
    print(kind, ann["tried"])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_recorded_recall_agrees_with_an_independent_recomputation(opened: dict[str, Retriever], kind: str) -> None:
    manifest = opened[kind].manifest
    index = opened[kind].faiss_index
    vectors, queries = stored_vectors(index), opening_vectors(opened[kind])
    assert manifest.ann is not None
    for value, recorded in manifest.ann["tried"]:
        (knob,) = manifest.search_params
        assert numpy_recall(index, vectors, queries, make_params(knob, value)) == pytest.approx(recorded, abs=2e-3)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_tuning_is_deterministic_over_shards_and_a_stricter_target_never_picks_less(
    opened: dict[str, Retriever], kind: str, tmp_path: Path
) -> None:
    """The build embedded into one shard; the same vectors in five shards must give the same record (the
    exact top-k is merged across shards), and a target of 1.0 a value at least as large."""
    manifest = opened[kind].manifest
    index = opened[kind].faiss_index
    vectors = stored_vectors(index)
    shards = []
    for number, first in enumerate(range(0, len(vectors), 100)):
        shards.append(tmp_path / f"shard-{number:06d}.npy")
        np.save(shards[-1], vectors[first : first + 100])
    queries = opening_vectors(opened[kind])
    source = "the first 16 words of sampled passages"
    again = tune_search(index, shards, query_vectors=queries, source=source)
    assert again is not None and again.record() == manifest.ann
    strict = tune_search(index, shards, target=1.0, query_vectors=queries, source=source)
    assert strict is not None and strict.param == again.param and strict.value is not None
    assert again.value is not None and strict.value >= again.value
    assert strict.recall >= again.recall
    fewer = tune_search(index, shards, queries=50)  # passage vectors as queries, each without itself
    assert fewer is not None and fewer.queries == 50 and fewer.source == "passage vectors"
    ids = sample_ids(len(vectors), 50)
    (knob,) = manifest.search_params
    for value, recorded in fewer.tried:
        found = index.search(vectors[ids], 11, params=make_params(knob, value))[1]
        exact = np.argsort(-(vectors[ids] @ vectors.T), axis=1, kind="stable")[:, :11]
        shares = []
        for own, want, got in zip(ids, exact, found, strict=True):
            want_k = [p for p in want if p != own][:10]
            got_k = [p for p in got if p >= 0 and p != own][:10]
            shares.append(len(set(want_k) & set(got_k)) / 10)
        assert float(np.mean(shares)) == pytest.approx(recorded, abs=2e-3)


def test_target_recall_is_checked_before_anything_is_built(tmp_path: Path, corpus_xml: Path) -> None:
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(BuildError, match="--target-recall must be a number in"):
            build_index([corpus_xml], tmp_path / "x.idx", BuildOptions(target_recall=bad), QUIET)
    assert not (tmp_path / "x.idx.partial").exists()


def test_flat_index_records_no_tuning(small_index: Path) -> None:
    manifest = Retriever.open(small_index).manifest
    assert manifest.ann is None and manifest.search_params == {}


def test_ef_search_per_query_changes_recall_through_the_id_map(opened: dict[str, Retriever]) -> None:
    retriever = opened["hnsw"]
    index = retriever.faiss_index
    assert isinstance(faiss.downcast_index(index), faiss.IndexIDMap2)  # the params must pass through it
    vectors = stored_vectors(index)

    def recall(ef_search: int) -> float:
        found = [[pid for pid, _ in row] for row in retriever.dense_search(vectors, 11, ef_search=ef_search)]
        return self_excluded_recall(vectors, found)

    # efSearch 1 is the narrowest search (a near-greedy walk of the graph); 1000 is more than the corpus.
    low, high = recall(1), recall(1000)
    assert high == pytest.approx(1.0, abs=2e-3) and low < high - 0.005, (low, high)
    hits = retriever.search_batch(QUESTIONS, k=5, mode="dense", ef_search=500)
    assert all(len(h) == 5 for h in hits)
    for bad in (0, -3, True, 2.5, "64"):
        with pytest.raises(InvalidQuery, match="ef_search must be a whole number >= 1"):
            retriever.search("hotel", mode="dense", ef_search=bad)  # type: ignore[arg-type]
    retriever.search("hotel", mode="dense", nprobe=3)  # a knob the index lacks is ignored, as on Flat


def test_old_manifests_without_the_measurement_still_open(built: dict[str, Path], tmp_path: Path) -> None:
    old = tmp_path / "old.idx"
    shutil.copytree(built["hnsw"], old)
    manifest_path = old / "manifest.json"
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    del data["ann"]
    data["search_params"] = {}  # as an HNSW bundle was written before tuning
    manifest_path.write_text(json.dumps(data), encoding="utf-8")
    retriever = Retriever.open(old)
    assert retriever.manifest.ann is None
    assert len(retriever.search("hotel in Prince Edward Island", k=3, mode="dense")) == 3  # the file's efSearch
    result = runner.invoke(app, ["info", str(old)])
    assert result.exit_code == 0 and "\nann " not in result.output


def test_eval_reports_ann_recall_one_on_flat_and_a_fraction_on_ivf(
    small_index: Path, opened: dict[str, Retriever]
) -> None:
    questions = [Question(str(i), text) for i, text in enumerate(QUESTIONS)]
    flat = evaluate(Retriever.open(small_index), questions, ["dense"], depth=10)
    assert flat.to_dict()["ann"] == {"recall@10": 1.0, "queries": len(QUESTIONS), "search_params": {}}
    assert flat.table().splitlines()[-1].startswith("ANN recall@10 1.000 (Flat, exact search")

    ivf = opened["ivf"]
    report = evaluate(ivf, questions, ["dense"], depth=10).to_dict()
    assert report["ann"]["search_params"] == ivf.manifest.search_params
    assert 0.0 <= report["ann"]["recall@10"] <= 1.0
    # Independently: every list visited is exact search, so the index's own search at nlist scores 1.
    xq = ivf.encode(QUESTIONS)
    every_list = [[p for p, _ in row] for row in ivf.dense_search(xq, 10, nprobe=16)]
    tuned = [[p for p, _ in row] for row in ivf.dense_search(xq, 10)]
    expected = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(tuned, every_list, strict=True)])
    assert report["ann"]["recall@10"] == pytest.approx(expected, abs=1e-4)
    lexical_only = evaluate(Retriever.open(small_index), questions, ["lexical"], depth=10)
    assert lexical_only.ann is None and "ann" not in lexical_only.to_dict()  # the dense index was not searched


def test_lossy_codes_are_not_given_a_figure(opened: dict[str, Retriever]) -> None:
    vectors = stored_vectors(opened["ivf"].faiss_index)
    pq = faiss.index_factory(vectors.shape[1], "IVF4,PQ8x4", faiss.METRIC_INNER_PRODUCT)
    pq.train(vectors)
    pq.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    assert exact_blocks(pq) is None
    assert exact_blocks(opened["ivf"].faiss_index) is not None and exact_blocks(opened["hnsw"].faiss_index)
    missing = AnnRecall(None, 8, {"nprobe": 2}, "IVF4,PQ8x4", "IVF4,PQ8x4 stores lossy codes")
    assert missing.to_dict() is None and "not measured" in missing.line()


def test_hnsw_eval_figure_matches_a_search_with_a_huge_ef(opened: dict[str, Retriever]) -> None:
    """efSearch above the corpus size makes HNSW's search exhaustive: the reference, computed another way."""
    retriever = opened["hnsw"]
    measured = ann_recall(retriever, QUESTIONS)
    assert measured.recall is not None and measured.search_params == retriever.manifest.search_params
    xq = retriever.encode(QUESTIONS)
    reference = [[p for p, _ in row] for row in retriever.dense_search(xq, 10, ef_search=1000)]
    tuned = [[p for p, _ in row] for row in retriever.dense_search(xq, 10)]
    expected = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(tuned, reference, strict=True)])
    assert measured.recall == pytest.approx(expected, abs=1e-4)


def test_cli_info_build_and_query_show_and_take_the_knobs(built: dict[str, Path]) -> None:
    info = runner.invoke(app, ["info", str(built["ivf"])])
    assert info.exit_code == 0, info.output
    (line,) = [row for row in info.output.splitlines() if row.startswith("ann ")]
    assert "recall@10" in line and "nprobe=" in line and "target 0.95 met" in line and "tried nprobe 1:" in line
    bad = runner.invoke(app, ["query", str(built["hnsw"]), "hotel", "--ef-search", "0"])
    assert bad.exit_code == 1 and "ef_search must be a whole number >= 1" in bad.stderr
    good = runner.invoke(app, ["query", str(built["hnsw"]), "hotel", "--ef-search", "64", "--json", "-k", "2"])
    assert good.exit_code == 0, good.output
    assert len(json.loads(good.stdout)["hits"]) == 2
    wrong = runner.invoke(app, ["build", "x", "--out", "y", "--target-recall", "2"])
    assert wrong.exit_code == 1 and "--target-recall must be a number in (0, 1]" in wrong.stderr


@pytest.mark.parametrize("kept", [False, True])
def test_a_resumed_build_records_the_same_measurement(
    built: dict[str, Path], corpus_xml: Path, tmp_path: Path, kept: bool
) -> None:
    """A build killed after its FAISS stage: the staging directory holds the store, the shards and index.faiss
    but no manifest. Resuming tunes again with the same result or, when the measurement was saved, keeps it as is."""
    from dataclasses import asdict

    from index_build.readers import open_corpus
    from index_build.staging import STATE_NAME, identity_of

    options = BuildOptions(index_factory="IVF16,Flat", lexical=False)
    original = Retriever.open(built["ivf"]).manifest
    out = tmp_path / "resumed.idx"
    staging = tmp_path / "resumed.idx.partial"
    shutil.copytree(built["ivf"], staging)
    (staging / "manifest.json").unlink()
    # The embedding shards as the build left them (IVF*,Flat stores the vectors as they were): nothing to re-embed.
    (staging / "shards").mkdir()
    np.save(staging / "shards" / "shard-000000.npy", stored_vectors(Retriever.open(built["ivf"]).faiss_index))
    state: dict[str, Any] = {
        "identity": identity_of(options, [open_corpus(corpus_xml)]),
        "sources": [asdict(s) for s in original.sources],
        "reader_stats": original.extra["reader_stats"],
    }
    assert original.ann is not None
    if kept:
        state["ann"] = {**original.ann, "queries": -1}  # a marker: proof that the saved record is used
    (staging / STATE_NAME).write_text(json.dumps(state), encoding="utf-8")
    report = build_index([corpus_xml], out, options, QUIET)
    assert report.resumed_stages[:2] == ["read", "index"]
    assert report.manifest.search_params == original.search_params
    if kept:
        assert "tuning" in report.resumed_stages and report.tuning_seconds is None
        assert report.manifest.ann == {**original.ann, "queries": -1}
    else:
        assert "tuning" not in report.resumed_stages and report.tuning_seconds is not None
        assert report.manifest.ann == original.ann


def test_sweep_stops_where_lossy_codes_plateau(tmp_path: Path) -> None:
    """4-byte PQ codes plateau far below the target: the sweep stops there instead of scanning up to nlist
    (at Wikipedia scale the large values are the slow ones); the same lists with exact codes reach it."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, 32)).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        x = centres[rng.integers(0, 200, n)] + 0.3 * rng.standard_normal((n, 32)).astype(np.float32)
        return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)

    vectors, queries = draw(40_000), draw(300)
    np.save(tmp_path / "shard.npy", vectors)
    results = {}
    for factory in ("IVF256,PQ4np", "IVF256,Flat"):
        index = faiss.index_factory(32, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.add(vectors)
        results[factory] = tune_search(index, [tmp_path / "shard.npy"], 0.95, query_vectors=queries, source="t")
    lossy, exact = results["IVF256,PQ4np"], results["IVF256,Flat"]
    assert lossy is not None and exact is not None
    values = [value for value, _ in lossy.tried]
    assert values[-1] < 256 and lossy.recall < 0.95, lossy.tried  # stopped early, target missed
    recalls = [recall for _, recall in lossy.tried][-PLATEAU_STEPS - 1 :]
    assert all(b - a < PLATEAU_GAIN for a, b in zip(recalls[:-1], recalls[1:], strict=True))
    best = max(recall for _, recall in lossy.tried)
    assert lossy.recall >= best - MISS_TOLERANCE
    assert lossy.value == min(v for v, r in lossy.tried if r >= best - MISS_TOLERANCE)
    assert exact.recall >= 0.95 and exact.value is not None and exact.value > values[0], exact.tried
