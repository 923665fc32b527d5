"""Questions with what counts as a right answer, read from the four layouts public QA and IR benchmarks ship in.

    SQuAD JSON       data[].paragraphs[].qas[]: answer strings, and the paragraph as the gold document
    DPR TSV          question<TAB>["answer", ...]  (the DPR repository's *.qa.csv files)
    NQ-open JSONL    {"question": ..., "answer": [...]}
    BEIR folder      queries.jsonl + qrels/test.tsv: graded relevance of corpus documents

Each reader gives `Question`s; which metrics apply follows from which fields are filled, so the runner needs
no knowledge of the file a question came from. A missing or malformed file is an `EvaluationError` naming the
file and the line or record, so that it can be fixed.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.errors import EvaluationError
from index_build.documents import CorpusError
from index_build.readers.common import one_line, open_binary
from index_build.readers.squad import check_article, check_paragraph, load_squad, paragraph_id

QUESTION_FORMATS: tuple[str, ...] = ("squad", "dpr", "nq-open", "beir")

_HEAD_BYTES = 65536
_SQUAD_DATA = re.compile(r'"data"\s*:\s*\[')


@dataclass(frozen=True)
class Question:
    """One question and its ground truth.

    `answers`: strings any of which, found in a passage, answers the question (SQuAD, DPR, NQ-open).
    `gold_documents`: source ids of the documents that answer it (SQuAD's paragraph, BEIR's qrels > 0).
    `qrels`: graded relevance by document source id, as BEIR judges it (0 = judged not relevant).
    """

    qid: str
    text: str
    answers: tuple[str, ...] = ()
    gold_documents: tuple[str, ...] = ()
    qrels: Mapping[str, int] = field(default_factory=dict, hash=False)


def read_questions(path: str | os.PathLike[str], format: str | None = None, *, split: str = "test") -> list[Question]:
    """Every question in `path`, in file order; `format` is one of `QUESTION_FORMATS`, detected if None.

    `split` names the BEIR qrels file (`qrels/{split}.tsv`). Raises `EvaluationError` for a missing,
    unrecognised or malformed file, or one without questions.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"question file not found: {path}")
    if format is None:
        format = detect_question_format(path)
    elif format not in QUESTION_FORMATS:
        raise EvaluationError(f"unknown question format {format!r}; the formats are {', '.join(QUESTION_FORMATS)}")
    if format == "beir":
        questions = _read_beir(path, split)
    else:
        if path.is_dir():
            raise EvaluationError(f"{path} is a directory; a {format} question file was expected")
        reader = {"squad": _read_squad, "dpr": _read_dpr, "nq-open": _read_nq_open}[format]
        try:
            questions = list(reader(path))
        except CorpusError as exc:  # raised by the shared file helpers; here the file is a question file
            raise EvaluationError(str(exc)) from None
    if not questions:
        raise EvaluationError(f"no questions found in {path}")
    return questions


def detect_question_format(path: Path) -> str:
    """The format of `path` from its content: a folder with queries.jsonl is BEIR; a JSON object with a
    `"data"` list is SQuAD; JSON lines with `"question"` are NQ-open; a tab in the first line is DPR TSV."""
    if path.is_dir():
        if (path / "queries.jsonl").is_file():
            return "beir"
        raise EvaluationError(f"{path} is a directory without queries.jsonl; a BEIR folder was expected")
    try:
        with open_binary(path) as fh:
            head = fh.read(_HEAD_BYTES)
    except CorpusError as exc:
        raise EvaluationError(str(exc)) from None
    except (EOFError, OSError) as exc:
        raise EvaluationError(f"{path} is truncated or corrupt: {one_line(exc, 160)}") from None
    text = head.decode("utf-8-sig", errors="ignore").lstrip()
    first = text.split("\n", 1)[0]
    if text.startswith("{"):
        try:
            record = json.loads(first)
        except ValueError:
            record = None
        if isinstance(record, dict) and "question" in record:
            return "nq-open"
        if (record is None or "data" in record) and _SQUAD_DATA.search(text):
            return "squad"
    elif "\t" in first:
        return "dpr"
    raise EvaluationError(
        f"cannot tell the format of {path}; the formats are {', '.join(QUESTION_FORMATS)} "
        "(SQuAD JSON, DPR question<TAB>answers TSV, NQ-open JSONL, BEIR folder)"
    )


def _read_squad(path: Path) -> Iterator[Question]:
    """SQuAD v1.1/v2.0: each question's gold document is its paragraph, with the squad reader's id for it;
    v2.0's unanswerable questions keep their gold paragraph but have no answers."""
    for a, article in enumerate(load_squad(path)):
        try:
            _, paragraphs = check_article(article, f"data[{a}]")
        except ValueError as exc:
            raise EvaluationError(f"{path}: {exc}") from None
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            try:
                qas = check_paragraph(paragraph, where).get("qas", [])
            except ValueError as exc:
                raise EvaluationError(f"{path}: {exc}") from None
            if not isinstance(qas, list):
                raise EvaluationError(f'{path}: {where} has a "qas" that is not a list')
            gold = paragraph_id(a, p)
            for q, qa in enumerate(qas):
                yield _squad_question(path, qa, f"{where}.qas[{q}]", gold)


def _squad_question(path: Path, qa: Any, where: str, gold: str) -> Question:
    if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or not qa["question"].strip():
        raise EvaluationError(f'{path}: {where} has no "question" string')
    answers = qa.get("answers", [])
    if not isinstance(answers, list) or not all(
        isinstance(x, dict) and isinstance(x.get("text"), str) for x in answers
    ):
        raise EvaluationError(f'{path}: {where} has "answers" that are not a list of {{"text": ...}} objects')
    return Question(
        qid=str(qa.get("id", where)),
        text=qa["question"],
        answers=_unique(x["text"] for x in answers),
        gold_documents=(gold,),
    )


def _read_dpr(path: Path) -> Iterator[Question]:
    """DPR's qas files, read as DPR reads them (csv with a tab delimiter); the answers column is a Python
    literal or JSON list. A first line whose second column is the word `answers` is taken as a header."""
    with open_binary(path) as fh, io.TextIOWrapper(fh, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, delimiter="\t")
        try:
            for row in reader:
                line = reader.line_num
                if not row or not "".join(row).strip():
                    continue
                if line == 1 and len(row) >= 2 and row[1].strip().lower() == "answers":
                    continue
                if len(row) < 2 or not row[0].strip():
                    raise EvaluationError(f"{path}, line {line}: expected question<TAB>answers list, got {row!r:.80}")
                answers = _answer_list(row[1])
                if answers is None:
                    raise EvaluationError(
                        f'{path}, line {line}: the answers column must be a list of strings like ["Paris"], '
                        f"got {row[1]!r:.80}"
                    )
                yield Question(qid=str(line), text=row[0], answers=answers)
        except UnicodeDecodeError as exc:
            raise EvaluationError(f"{path} is not valid UTF-8 (byte {exc.start} of a block)") from None
        except csv.Error as exc:
            raise EvaluationError(f"{path}, line {reader.line_num}: {one_line(exc, 120)}") from None


def _answer_list(column: str) -> tuple[str, ...] | None:
    """The answers a DPR column holds, or None when it is not a list of strings."""
    value: Any
    try:
        value = json.loads(column)
    except ValueError:
        try:
            value = ast.literal_eval(column.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
        return None
    return _unique(value)


def _read_nq_open(path: Path) -> Iterator[Question]:
    """NQ-open JSONL, `{"question": str, "answer": [str, ...]}` a line (an `"id"` is kept when present)."""
    with open_binary(path) as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8-sig"))
            except UnicodeDecodeError:
                raise EvaluationError(f"{path}, line {number}: not valid UTF-8") from None
            except ValueError as exc:
                raise EvaluationError(f"{path}, line {number}: not valid JSON ({one_line(exc, 120)})") from None
            question = record.get("question") if isinstance(record, dict) else None
            if not isinstance(question, str) or not question.strip():
                raise EvaluationError(f'{path}, line {number}: expected an object with a "question" string')
            answers = record.get("answer", [])
            if not isinstance(answers, list) or not all(isinstance(x, str) for x in answers):
                raise EvaluationError(f'{path}, line {number}: "answer" must be a list of strings')
            yield Question(qid=str(record.get("id", number)), text=question, answers=_unique(answers))


def _read_beir(folder: Path, split: str) -> list[Question]:
    """A BEIR dataset folder: the queries that `qrels/{split}.tsv` judges, in qrels order, as BEIR's
    GenericDataLoader keeps them; a document with relevance > 0 is gold."""
    if not folder.is_dir():
        raise EvaluationError(f"{folder} is not a folder; a BEIR folder holds queries.jsonl and qrels/{split}.tsv")
    queries = _beir_queries(folder / "queries.jsonl")
    qrels = _beir_qrels(folder / "qrels" / f"{split}.tsv")
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        raise EvaluationError(
            f"{folder}: qrels/{split}.tsv judges {len(missing)} queries that queries.jsonl lacks "
            f"(first: {missing[0]!r}); is it the right folder?"
        )
    return [
        Question(
            qid=qid,
            text=queries[qid],
            gold_documents=tuple(doc for doc, rel in judged.items() if rel > 0),
            qrels=judged,
        )
        for qid, judged in qrels.items()
    ]


def _beir_queries(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise EvaluationError(f"BEIR queries file not found: {path}")
    queries: dict[str, str] = {}
    with open(path, encoding="utf-8-sig") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise EvaluationError(f"{path}, line {number}: not valid JSON ({one_line(exc, 120)})") from None
                if not isinstance(record, dict) or "_id" not in record or not isinstance(record.get("text"), str):
                    raise EvaluationError(f'{path}, line {number}: expected {{"_id": ..., "text": "..."}}')
                queries[str(record["_id"])] = record["text"]
        except UnicodeDecodeError:
            raise EvaluationError(f"{path} is not valid UTF-8") from None
    return queries


def _beir_qrels(path: Path) -> dict[str, dict[str, int]]:
    """`query-id<TAB>corpus-id<TAB>score` rows; the header row is skipped (BEIR skips the first row always,
    here only when its score is not a number, so a file without a header loses nothing)."""
    if not path.is_file():
        raise EvaluationError(f"BEIR qrels file not found: {path}")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        try:
            for number, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 3:
                    raise EvaluationError(f"{path}, line {number}: expected query-id<TAB>corpus-id<TAB>score")
                try:
                    score = int(row[2])
                except ValueError:
                    if number == 1:
                        continue
                    raise EvaluationError(f"{path}, line {number}: score {row[2]!r} is not a whole number") from None
                qrels.setdefault(row[0], {})[row[1]] = score
        except UnicodeDecodeError:
            raise EvaluationError(f"{path} is not valid UTF-8") from None
        except csv.Error as exc:
            raise EvaluationError(f"{path}: {one_line(exc, 120)}") from None
    return qrels


def _unique(values: Any) -> tuple[str, ...]:
    """Answers without repeats, first occurrence first (SQuAD lists the same span once per annotator)."""
    return tuple(dict.fromkeys(values))
