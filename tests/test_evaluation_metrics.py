"""Metrics against hand-computed values, and the question readers on small files of each layout.

The rankings here are fixed lists of hits handed to `evaluate` by a stand-in retriever: what is tested is the
arithmetic (roll-up to documents, answer matching, pytrec_eval's nDCG/recall), which does not depend on the
model. Retrieval quality with the real model is tested in test_evaluation.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from evaluation import EvaluationError, Question, evaluate, read_questions
from evaluation.metrics import answer_tokens, has_answer, normalize_answer
from evaluation.questions import detect_question_format
from evaluation.runner import EvaluationReport, parse_modes
from retriever.hit import Hit


def _hit(rank: int, source_id: str, score: float, text: str = "") -> Hit:
    return Hit(
        passage_id=hash((source_id, rank, text)) & 0xFFFFFF,
        rank=rank,
        score=score,
        text=text,
        title="",
        section="",
        url=None,
        document_id=0,
        source_id=source_id,
        revision=None,
        timestamp=None,
        start=0,
        end=len(text),
        sha256="",
    )


class FixedRankings:
    """Stands in for a Retriever: each question's hits are given, cut at k like a real search."""

    path = Path("toy.idx")
    default_mode = "dense"

    def __init__(self, rankings: dict[str, list[Hit]]) -> None:
        self.rankings = rankings

    def search_batch(
        self, queries: Sequence[str], k: int = 10, *, mode: str | None = None, highlight: bool = True
    ) -> list[list[Hit]]:
        return [self.rankings[q][:k] for q in queries]


def _evaluate(rankings: dict[str, list[Hit]], questions: list[Question], **options: Any) -> EvaluationReport:
    # Given rankings have no FAISS index behind them to measure: no ANN recall.
    return evaluate(FixedRankings(rankings), questions, ["dense"], measure_ann=False, **options)  # type: ignore[arg-type]


def test_normalize_answer_is_squads() -> None:
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("An apple a day; THE end.") == "apple day end"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("Denver Broncos'") == "denver broncos"


def test_has_answer_matches_whole_token_runs() -> None:
    passage = answer_tokens("The band was formed by the Beatles' manager, in 1962.")
    assert has_answer([answer_tokens("Beatles")], passage)
    assert has_answer([answer_tokens("the beatles manager")], passage)  # punctuation and articles ignored
    assert not has_answer([answer_tokens("Beat")], passage)  # a part of a token is no match
    assert not has_answer([answer_tokens("manager 1962")], passage)  # tokens must be adjacent
    assert not has_answer([answer_tokens("the")], passage)  # normalises to nothing: never a match
    assert has_answer([answer_tokens("nope"), answer_tokens("1962")], passage)


def test_graded_qrels_by_hand() -> None:
    """Three queries with graded qrels, passages rolled up to documents, then trec_eval's nDCG@10 and recall.

    trec_eval's nDCG: gain = the relevance grade, discount log2(rank + 1), ideal = grades sorted descending.
    q1 documents (best passage first, d3's second passage dropped): d3 (0), d1 (2), d4 (unjudged), d2 (1)
        DCG = 2/log2(3) + 1/log2(5) = 1.26186 + 0.43068 = 1.69254; IDCG = 2/1 + 1/log2(3) = 2.63093
        nDCG@10 = 0.64332; recall@1 = 0/2; recall@5 = 2/2; first relevant document at rank 2: RR = 1/2
    q2 retrieves nothing relevant: nDCG = recall = RR = 0
    q3 documents: d9 (1), d8 (3): DCG = 1/1 + 3/log2(3) = 2.89279; IDCG = 3/1 + 1/log2(3) = 3.63093
        nDCG@10 = 0.79671; recall@1 = 1/2; recall@5 = 2/2; RR = 1
    """
    rankings = {
        "q1": [_hit(1, "d3", 0.9), _hit(2, "d1", 0.8), _hit(3, "d3", 0.75), _hit(4, "d4", 0.7), _hit(5, "d2", 0.6)],
        "q2": [_hit(1, "d6", 0.5), _hit(2, "d7", 0.4)],
        "q3": [_hit(1, "d9", 0.95), _hit(2, "d9", 0.9), _hit(3, "d8", 0.5)],
    }
    qrels = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d5": 1}, "q3": {"d8": 3, "d9": 1}}
    questions = [
        Question(q, q, gold_documents=tuple(d for d, rel in judged.items() if rel > 0), qrels=judged)
        for q, judged in qrels.items()
    ]
    row = _evaluate(rankings, questions).modes["dense"]
    ndcg_q1 = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3))
    ndcg_q3 = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ndcg_q1 == pytest.approx(0.64332, abs=1e-5) and ndcg_q3 == pytest.approx(0.79671, abs=1e-5)
    assert row["ndcg@10"] == pytest.approx((ndcg_q1 + 0 + ndcg_q3) / 3, abs=1e-9)
    assert row["recall@1"] == pytest.approx((0 + 0 + 1 / 2) / 3)
    assert row["recall@5"] == pytest.approx((1 + 0 + 1) / 3)
    assert row["recall@100"] == pytest.approx(2 / 3)
    assert row["mrr@10"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert list(row) == ["recall@1", "recall@5", "recall@20", "recall@100", "mrr@10", "ndcg@10", "qps"]


def test_answers_and_gold_paragraphs_by_hand() -> None:
    """SQuAD-style: answer@k over passages, recall@k over documents, MRR@10 over documents."""
    rankings = {
        # gold p7 at document rank 3 (p2 twice, then p5, then p7); the answer first appears in passage rank 2
        "a": [
            _hit(1, "p2", 0.9, "Nothing here."),
            _hit(2, "p2", 0.8, "It was Rollo, a Viking."),
            _hit(3, "p5", 0.7, "Rollo again."),
            _hit(4, "p7", 0.6, "The leader was Rollo."),
        ],
        # gold p1 at rank 1, but the answer is in no passage
        "b": [_hit(1, "p1", 0.9, "An unrelated sentence."), _hit(2, "p3", 0.5, "Another one.")],
    }
    questions = [Question("a", "a", answers=("rollo",), gold_documents=("p7",)), Question("b", "b", ("1066",), ("p1",))]
    report = _evaluate(rankings, questions, depth=20)
    row = report.modes["dense"]
    assert (row["answer@1"], row["answer@5"], row["answer@20"]) == (0.0, 0.5, 0.5)
    assert (row["recall@1"], row["recall@5"], row["recall@20"]) == (0.5, 1.0, 1.0)
    assert row["mrr@10"] == pytest.approx((1 / 3 + 1) / 2)
    assert "recall@100" not in row and "answer@100" not in row and "ndcg@10" not in row  # above depth, no qrels
    as_json = json.loads(report.to_json())
    assert set(as_json) == {"modes", "questions", "index", "dataset"} and as_json["questions"] == 2
    header, line = report.table().splitlines()
    assert header.split() == ["mode", "recall@1", "recall@5", "recall@20", "answer@1", "answer@5", "answer@20"] + [
        "mrr@10",
        "qps",
    ]
    assert line.split()[:4] == ["dense", "0.500", "1.000", "1.000"]


def test_mrr_over_answer_passages_without_gold_documents() -> None:
    rankings = {"q": [_hit(1, "x", 0.9, "no"), _hit(2, "y", 0.8, "no"), _hit(3, "x", 0.7, "Paris, France")]}
    row = _evaluate(rankings, [Question("q", "q", answers=("paris",))]).modes["dense"]
    assert row["mrr@10"] == pytest.approx(1 / 3) and row["answer@1"] == 0.0 and row["answer@5"] == 1.0
    assert not any(key.startswith("recall") for key in row)


def test_bad_options() -> None:
    questions = [Question("q", "q", answers=("x",))]
    with pytest.raises(EvaluationError, match="unknown search mode 'fuzzy'"):
        evaluate(FixedRankings({}), questions, ["fuzzy"])  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="depth must be"):
        evaluate(FixedRankings({}), questions, ["dense"], depth=0)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="no questions"):
        evaluate(FixedRankings({}), [], ["dense"])  # type: ignore[arg-type]
    assert parse_modes(None) == [None] and parse_modes("dense, hybrid,dense") == ["dense", "hybrid"]
    with pytest.raises(EvaluationError, match="empty item"):
        parse_modes("dense,,hybrid")


def test_dpr_tsv(tmp_path: Path) -> None:
    path = tmp_path / "nq-test.qa.csv"
    path.write_text(
        "who got the first nobel prize in physics\t['Wilhelm Conrad Röntgen']\n"
        'when is the next deadpool movie being released\t["May 18, 2018"]\n'
        "\n"
        "what does \"hp\" stand for\t['Hewlett-Packard', 'horsepower']\n",
        encoding="utf-8",
    )
    assert detect_question_format(path) == "dpr"
    questions = read_questions(path)
    assert [q.answers for q in questions] == [
        ("Wilhelm Conrad Röntgen",),
        ("May 18, 2018",),
        ("Hewlett-Packard", "horsepower"),
    ]
    assert questions[2].text == 'what does "hp" stand for' and questions[0].qid == "1"
    assert not questions[0].gold_documents and not questions[0].qrels

    bad = tmp_path / "bad.tsv"
    bad.write_text("fine question\t['yes']\nbroken question\tnot a list\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match=r"bad\.tsv, line 2: the answers column must be a list") as info:
        read_questions(bad)
    assert "\n" not in str(info.value)
    no_tab = tmp_path / "no-tab.tsv"
    no_tab.write_text("a\t['b']\njust a question\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match=r"line 2: expected question<TAB>answers"):
        read_questions(no_tab)


def test_nq_open_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "nq-open.jsonl"
    lines = [{"question": "where is the eiffel tower", "answer": ["Paris", "Paris"]}, {"question": "q2", "answer": []}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    assert detect_question_format(path) == "nq-open"
    questions = read_questions(path)
    assert [(q.qid, q.text, q.answers) for q in questions] == [
        ("1", "where is the eiffel tower", ("Paris",)),
        ("2", "q2", ()),
    ]
    path.write_text('{"question": "ok", "answer": ["a"]}\n{"question": "no", "answer": "a string"}\n')
    with pytest.raises(EvaluationError, match=r"line 2: \"answer\" must be a list of strings"):
        read_questions(path)


def test_beir_folder(tmp_path: Path) -> None:
    folder = tmp_path / "scifact"
    (folder / "qrels").mkdir(parents=True)
    queries = [{"_id": "1", "text": "first"}, {"_id": "2", "text": "unjudged"}, {"_id": "3", "text": "third"}]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n3\tdocA\t2\n1\tdocB\t1\n3\tdocC\t0\n", encoding="utf-8"
    )
    assert detect_question_format(folder) == "beir"
    questions = read_questions(folder)
    # Only judged queries, in qrels order; a grade of 0 is judged but not gold.
    assert [(q.qid, q.text, q.gold_documents, dict(q.qrels)) for q in questions] == [
        ("3", "third", ("docA",), {"docA": 2, "docC": 0}),
        ("1", "first", ("docB",), {"docB": 1}),
    ]
    with pytest.raises(EvaluationError, match=r"BEIR qrels file not found: .*dev\.tsv"):
        read_questions(folder, split="dev")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tdocB\thigh\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match="line 2: score 'high' is not a whole number"):
        read_questions(folder)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="question file not found"):
        read_questions(tmp_path / "nope.json")
    with pytest.raises(EvaluationError, match="without queries.jsonl"):
        read_questions(tmp_path)
    noise = tmp_path / "noise.txt"
    noise.write_text("just some words\n")
    with pytest.raises(EvaluationError, match="cannot tell the format of .*noise.txt") as info:
        read_questions(noise)
    assert "\n" not in str(info.value)
    with pytest.raises(EvaluationError, match="unknown question format 'csv'"):
        read_questions(noise, format="csv")
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"answers": []}]}]}]}')
    with pytest.raises(EvaluationError, match=r'data\[0\]\.paragraphs\[0\]\.qas\[0\] has no "question" string'):
        read_questions(broken)
