"""Evaluation end to end with the real model on real SQuAD data: build, ask, score, through the library and the CLI.

The corpus is the first two articles of the SQuAD dev file (99 paragraphs, 129 passages), built with
`--format squad`; the questions are the first question of each paragraph, so they cover both articles.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import SQUAD
from typer.testing import CliRunner

from evaluation import EvaluationReport, evaluate, read_questions
from groundsearch.cli import app
from index_build import BuildOptions, RunOptions, build_index
from retriever import Retriever

pytestmark = pytest.mark.needs_data(SQUAD)
runner = CliRunner()
ARTICLES = 2
LIMIT = 60
# Found by reading the data: a rare name that occurs in one paragraph of "Normans" (data[1].paragraphs[10]).
HAND_CHECKED = ("What is another name for the Tabula Rogeriana?", "1.10", "Kitab Rudjdjar")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The corpus (first articles, every question) and a question file (the first question of each paragraph)."""
    squad = json.loads(SQUAD.read_text(encoding="utf-8"))
    folder = tmp_path_factory.mktemp("squad")
    corpus = {"version": squad["version"], "data": squad["data"][:ARTICLES]}
    (folder / "corpus.json").write_text(json.dumps(corpus), encoding="utf-8")
    firsts = [
        {"title": a["title"], "paragraphs": [{**p, "qas": p["qas"][:1]} for p in a["paragraphs"]]}
        for a in corpus["data"]
    ]
    (folder / "questions.json").write_text(json.dumps({"version": "1.1", "data": firsts}), encoding="utf-8")
    return {"corpus": folder / "corpus.json", "questions": folder / "questions.json", "folder": folder}


@pytest.fixture(scope="module")
def index(files: dict[str, Path]) -> Path:
    out = files["folder"] / "squad.idx"
    build_index([files["corpus"]], out, BuildOptions(format="squad"), RunOptions(progress=False, workers=1))
    return out


@pytest.fixture(scope="module")
def retriever(index: Path) -> Retriever:
    return Retriever.open(index)


@pytest.fixture(scope="module")
def report(retriever: Retriever, files: dict[str, Path]) -> EvaluationReport:
    questions = read_questions(files["questions"])[:LIMIT]
    return evaluate(retriever, questions, retriever.modes, dataset=str(files["questions"]))


def test_the_index_holds_every_paragraph(retriever: Retriever) -> None:
    assert retriever.manifest.documents == 99 and retriever.manifest.sources[0].format == "squad"


def test_cli_reproduces_the_library(report: EvaluationReport, index: Path, files: dict[str, Path], tmp_path: Path):
    out = tmp_path / "report.json"
    modes = ",".join(report.modes)
    args = ["eval", str(index), "--qa", str(files["questions"]), "--mode", modes, "--limit", str(LIMIT)]
    result = runner.invoke(app, [*args, "--report", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text(encoding="utf-8"))
    expected = report.to_dict()
    assert set(written) == {"modes", "questions", "index", "dataset", "ann"}
    assert written["ann"] == {"recall@10": 1.0, "queries": LIMIT, "search_params": {}}  # Flat: exact search
    assert (written["questions"], written["index"], written["dataset"]) == (LIMIT, str(index), str(files["questions"]))
    assert list(written["modes"]) == list(expected["modes"])
    for mode, row in expected["modes"].items():
        assert list(written["modes"][mode]) == list(row)
        assert {k: v for k, v in written["modes"][mode].items() if k != "qps"} == {
            k: v for k, v in row.items() if k != "qps"
        }
        assert written["modes"][mode]["qps"] > 0
    # The printed table has a row per mode with the same figures, rounded, then the ANN recall line.
    *lines, ann_line = result.stdout.strip().splitlines()
    assert ann_line.startswith("ANN recall@10 1.000 (Flat, exact search")
    assert lines[0].split()[:2] == ["mode", "recall@1"] and [line.split()[0] for line in lines[1:]] == list(
        report.modes
    )
    for line, row in zip(lines[1:], expected["modes"].values(), strict=True):
        assert line.split()[1] == f"{row['recall@1']:.3f}"


def test_metrics_are_fractions_and_grow_with_k(report: EvaluationReport) -> None:
    assert report.questions == LIMIT and "dense" in report.modes
    for mode, row in report.modes.items():
        assert set(row) == {
            *(f"{m}@{k}" for m in ("recall", "answer") for k in (1, 5, 20, 100)),
            "mrr@10",
            "qps",
        }, mode
        assert all(0.0 <= v <= 1.0 for k, v in row.items() if k != "qps")
        for metric in ("recall", "answer"):
            values = [row[f"{metric}@{k}"] for k in (1, 5, 20, 100)]
            assert values == sorted(values), (mode, metric, values)
        assert row["recall@1"] <= row["mrr@10"] <= row["recall@20"]
    # 99 paragraphs of two articles are an easy corpus: the real model must find nearly every gold paragraph.
    dense = report.modes["dense"]
    assert dense["recall@20"] >= 0.9 and dense["answer@20"] >= 0.9 and dense["recall@1"] >= 0.4, dense


def test_hand_checked_question_is_answered_at_rank_1(retriever: Retriever, files: dict[str, Path]) -> None:
    question, gold, answer = HAND_CHECKED
    corpus = json.loads(files["corpus"].read_text(encoding="utf-8"))
    article, paragraph = map(int, gold.split("."))
    context = corpus["data"][article]["paragraphs"][paragraph]["context"]
    assert "Tabula Rogeriana" in context and answer in context  # the gold paragraph, checked by hand
    (asked,) = [q for q in read_questions(files["corpus"]) if q.text == question]
    assert asked.gold_documents == (gold,) and answer in asked.answers
    row = evaluate(retriever, [asked], ["dense"]).modes["dense"]
    assert row["recall@1"] == 1.0 and row["mrr@10"] == 1.0 and row["answer@1"] == 1.0, row
    for mode in retriever.modes:
        assert retriever.search(question, k=1, mode=mode)[0].source_id == gold, mode


def test_beir_qrels_agree_with_gold_paragraphs(retriever: Retriever, report: EvaluationReport, tmp_path: Path):
    """The same questions as a BEIR folder: pytrec_eval's recall@k must equal our gold-paragraph recall@k,
    and with one relevant document nDCG@10 = 1/log2(rank + 1) >= 1/rank, so nDCG@10 >= MRR@10."""
    questions = read_questions(report.dataset)[:LIMIT]
    (tmp_path / "qrels").mkdir()
    queries = "".join(json.dumps({"_id": q.qid, "text": q.text}) + "\n" for q in questions)
    (tmp_path / "queries.jsonl").write_text(queries, encoding="utf-8")
    qrels = "".join(f"{q.qid}\t{q.gold_documents[0]}\t1\n" for q in questions)
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels, encoding="utf-8")
    beir = evaluate(retriever, read_questions(tmp_path), ["dense"]).modes["dense"]
    squad = report.modes["dense"]
    for k in (1, 5, 20, 100):
        assert beir[f"recall@{k}"] == pytest.approx(squad[f"recall@{k}"]), k
    assert beir["mrr@10"] == pytest.approx(squad["mrr@10"]) and beir["ndcg@10"] >= beir["mrr@10"]
    assert "answer@1" not in beir


def test_eval_help_has_an_example() -> None:
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0 and "Example: groundsearch eval" in result.output


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--qa", "{missing}"], "question file not found"),
        (["--qa", "{bad_tsv}"], "bad.tsv, line 2: the answers column must be a list"),
        (["--qa", "{questions}", "--mode", "dense,fuzzy"], "unknown search mode 'fuzzy'"),
        ([], "exactly one of --qa FILE or --beir FOLDER"),
        (["--qa", "{questions}", "--limit", "0"], "--limit must be at least 1"),
        (["--beir", "{questions}"], "is not a folder"),
        (["--qa", "{questions}", "--report", "{missing}/r.json"], "does not exist"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    index: Path, files: dict[str, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    bad_tsv = tmp_path / "bad.tsv"
    bad_tsv.write_text("who wrote hamlet\t['Shakespeare']\nwho painted guernica\tPicasso\n", encoding="utf-8")
    paths: dict[str, Any] = {"missing": tmp_path / "nope", "bad_tsv": bad_tsv, "questions": files["questions"]}
    result = runner.invoke(app, ["eval", str(index), *(a.format(**paths) for a in extra)])
    assert result.exit_code == 1, result.output
    assert message in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_hybrid_is_at_least_the_best_single_mode(report: EvaluationReport) -> None:
    """Measured on these 60 questions: recall@1 dense 0.633, lexical 0.717, hybrid 0.750; answer@5 0.917, 0.933,
    0.983. The fusion was chosen on the full SQuAD file (bench/fusion.py), not on these."""
    hybrid, dense, lexical = (report.modes[m] for m in ("hybrid", "dense", "lexical"))
    for metric in (*(f"{m}@{k}" for m in ("recall", "answer") for k in (1, 5, 20, 100)), "mrr@10"):
        assert hybrid[metric] >= max(dense[metric], lexical[metric]), metric


@pytest.fixture(scope="module")
def unanswerable(files: dict[str, Path]) -> Path:
    """The first question of each paragraph of the next two articles: their answers are not in the index."""
    squad = json.loads(SQUAD.read_text(encoding="utf-8"))
    others = [
        {"title": a["title"], "paragraphs": [{**p, "qas": p["qas"][:1]} for p in a["paragraphs"]]}
        for a in squad["data"][ARTICLES : 2 * ARTICLES]
    ]
    path = files["folder"] / "unanswerable.json"
    path.write_text(json.dumps({"version": "1.1", "data": others}), encoding="utf-8")
    return path


def test_unanswerable_questions_add_abstention(
    retriever: Retriever, index: Path, files: dict[str, Path], unanswerable: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    args = ["eval", str(index), "--qa", str(files["questions"]), "--mode", "hybrid,dense", "--limit", "40"]
    result = runner.invoke(app, [*args, "--unanswerable", str(unanswerable), "--report", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text(encoding="utf-8"))["abstention"]
    assert (written["mode"], set(written["by_mode"])) == ("hybrid", {"hybrid", "dense"})
    assert (written["answerable_questions"], written["unanswerable_questions"]) == (40, 40)
    assert written["threshold"] == pytest.approx(retriever.calibration.threshold("hybrid"))  # type: ignore[union-attr]
    # Two other articles' questions against these two: the confidence tells them apart almost always.
    assert written["auroc"] > 0.9 and written["flagged_unanswerable"] > written["flagged_answerable"]
    assert "abstention (hybrid, 40 unanswerable questions" in result.stdout
    # The library gives the same figures, and a bar of 0 flags nothing.
    library = evaluate(
        retriever,
        read_questions(files["questions"])[:40],
        ["hybrid"],
        unanswerable=read_questions(unanswerable)[:40],
        measure_ann=False,
    )
    assert library.abstention[0].to_dict() == {k: v for k, v in written.items() if k != "by_mode"}
    none = evaluate(
        retriever,
        read_questions(files["questions"])[:5],
        ["dense"],
        unanswerable=read_questions(unanswerable)[:5],
        min_confidence=0.0,
    )
    assert none.abstention[0].flagged_answerable == none.abstention[0].flagged_unanswerable == 0.0


def test_abstention_needs_a_calibrated_index(index: Path, files: dict[str, Path], unanswerable: Path, tmp_path: Path):
    copy = tmp_path / "uncalibrated.idx"
    shutil.copytree(index, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["confidence"], manifest["no_confidence"] = None, "uncalibrated: for this test"
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    args = ["eval", str(copy), "--qa", str(files["questions"]), "--unanswerable", str(unanswerable), "--limit", "3"]
    result = runner.invoke(app, args)
    assert (
        result.exit_code == 1 and "has no match-confidence calibration (uncalibrated: for this test)" in result.stderr
    )
    assert Retriever.open(copy).search_with_status("normans").answerable is None
