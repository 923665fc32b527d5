"""Run questions through a retriever in each search mode and score the results: one table, one JSON report.

Searches go through `Retriever.search_batch`, the same path users take, in batches; only those calls are
timed, so queries/s is the search's own speed (encoding + FAISS or lexical search + store), not the metric
arithmetic's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.abstention import Abstention, abstention
from evaluation.ann import AnnRecall, ann_recall
from evaluation.errors import EvaluationError
from evaluation.metrics import (
    ANSWER_KS,
    MRR_K,
    NDCG_K,
    RECALL_KS,
    answer_tokens,
    document_ranking,
    gold_recall,
    has_answer,
    qrels_metrics,
    reciprocal_rank,
)
from evaluation.questions import Question
from retriever.bundle import atomic_open
from retriever.hit import Hit
from retriever.retriever import MODES, Retriever

# Column order of the table and the JSON report; a metric that does not apply to the data is left out.
METRIC_ORDER: tuple[str, ...] = (
    *(f"recall@{k}" for k in RECALL_KS),
    *(f"answer@{k}" for k in ANSWER_KS),
    f"mrr@{MRR_K}",
    f"ndcg@{NDCG_K}",
    "qps",
)


@dataclass
class EvaluationReport:
    """Mean metrics per mode (`modes[mode][metric]`), over the questions each metric applies to; `ann`, the
    dense index's recall@10 against exact search, when a mode searched it."""

    modes: dict[str, dict[str, float]]
    questions: int
    index: str
    dataset: str
    depth: int = 100
    ann: AnnRecall | None = field(default=None)
    # With unanswerable questions: how well each mode says "no good match" (the first mode's is the headline).
    abstention: list[Abstention] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON shape: `{"modes": {mode: {metric: value}}, "questions", "index", "dataset"}`, and
        `"ann": {"recall@10", "queries", "search_params"}` where it was measured (never for lossy codes), and
        `"abstention": {"auroc", "flagged_answerable", "flagged_unanswerable", "threshold", "mode", ...,
        "by_mode": {mode: {...}}}` where unanswerable questions were asked (the first mode's figures on top)."""
        report: dict[str, Any] = {
            "modes": self.modes,
            "questions": self.questions,
            "index": self.index,
            "dataset": self.dataset,
        }
        if self.ann is not None:
            report["ann"] = self.ann.to_dict()
        if self.abstention:
            by_mode = {a.mode: a.to_dict() for a in self.abstention}
            report["abstention"] = {**self.abstention[0].to_dict(), "by_mode": by_mode}
        return report

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    def write(self, path: Path) -> None:
        """The figures as JSON in `path`, written atomically; a file that cannot be written is EvaluationError."""
        try:
            with atomic_open(path, "w", encoding="utf-8") as fh:
                fh.write(self.to_json())
        except OSError as exc:
            raise EvaluationError(f"cannot write the report to {path}: {exc.strerror or exc}") from None

    def table(self) -> str:
        """One row per mode, one column per metric that applies, then queries/s; fixed-width for a terminal. The
        ANN recall line, where there is one, comes under the rows."""
        columns = [m for m in METRIC_ORDER if any(m in row for row in self.modes.values())]
        width = max([len("mode"), *(len(mode) for mode in self.modes)])
        lines = ["  ".join(["mode".ljust(width), *(c.rjust(max(len(c), 6)) for c in columns)])]
        for mode, row in self.modes.items():
            cells = [_cell(row.get(c), c).rjust(max(len(c), 6)) for c in columns]
            lines.append("  ".join([mode.ljust(width), *cells]))
        if self.ann is not None:
            lines.append(self.ann.line())
        lines += [a.line() for a in self.abstention]
        return "\n".join(lines)


def _cell(value: float | None, column: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if column == "qps" else f"{value:.3f}"


def parse_modes(text: str | None) -> list[str | None]:
    """`--mode dense,hybrid` as a list of modes; None (no option) is `[None]`, the index's default mode."""
    if text is None:
        return [None]
    modes = [part.strip() for part in text.split(",")]
    if not all(modes):
        raise EvaluationError(f"--mode {text!r} has an empty item; give e.g. --mode {','.join(MODES)}")
    return list(dict.fromkeys(modes))


def check_request(
    qa: Path | None, beir: Path | None, limit: int | None, report: Path | None
) -> tuple[Path, str | None]:
    """The question source and its format (None: detected) of `groundsearch eval`; else `EvaluationError`."""
    if (qa is None) == (beir is None):
        raise EvaluationError("give the questions with exactly one of --qa FILE or --beir FOLDER")
    if limit is not None and limit < 1:
        raise EvaluationError(f"--limit must be at least 1, got {limit}")
    if report is not None and not report.parent.is_dir():
        raise EvaluationError(f"cannot write the report to {report}: folder {report.parent} does not exist")
    if qa is not None:
        return qa, None
    assert beir is not None
    return beir, "beir"


def check_options(modes: Sequence[str | None], depth: int, batch_size: int) -> list[str | None]:
    """The modes without repeats, once every option is known to be usable; else `EvaluationError`.

    Separate from `evaluate` so that the CLI can check a user's options before loading the model.
    """
    if not modes:
        raise EvaluationError(f"no search mode given; the modes are {', '.join(MODES)}")
    unknown = [m for m in modes if m is not None and m not in MODES]
    if unknown:
        raise EvaluationError(f"unknown search mode {unknown[0]!r}; the modes are {', '.join(MODES)}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise EvaluationError(f"depth must be a whole number >= 1, got {depth!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EvaluationError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    return list(dict.fromkeys(modes))


def evaluate(
    retriever: Retriever,
    questions: Sequence[Question],
    modes: Sequence[str | None],
    depth: int = 100,
    batch_size: int = 64,
    *,
    dataset: str = "",
    measure_ann: bool = True,
    unanswerable: Sequence[Question] = (),
    min_confidence: float | None = None,
) -> EvaluationReport:
    """Search every question `depth` passages deep in each mode and report the metrics that apply.

    A mode of None is the index's default mode (`Retriever.default_mode`) and is reported under that name.
    Metrics at a cut-off above `depth` are not reported, since they could not be computed honestly.
    `measure_ann` adds the dense index's recall@10 against exact search on the same questions.
    `unanswerable` questions (whose answers are not in the index) add each mode's abstention figures: how well
    the best hit's confidence tells them from `questions`, and what the bar (`min_confidence`, default the
    index's calibrated one) flags. They need an index with a calibration.
    """
    modes = check_options(modes, depth, batch_size)
    if not questions:
        raise EvaluationError("no questions to evaluate")
    if unanswerable and retriever.calibration is None:
        reason = retriever.manifest.no_confidence or "it was built before match confidence existed"
        raise EvaluationError(f"{retriever.path} has no match-confidence calibration ({reason}); rebuild it")
    texts = [q.text for q in questions]
    scorer = _Scorer(questions, depth)
    results: dict[str, dict[str, float]] = {}
    for mode in dict.fromkeys(m or retriever.default_mode for m in modes):
        # One untimed search first: it fails fast on a mode the index lacks, and whatever a mode loads
        # lazily is not charged to its queries/s.
        retriever.search_batch(texts[:1], k=1, mode=mode, highlight=False)
        seconds = 0.0
        hits: list[list[Hit]] = []
        for start in range(0, len(texts), batch_size):
            began = time.perf_counter()
            # No highlights: they are for reading hits, and would charge retrieval's queries/s for every one.
            hits += retriever.search_batch(texts[start : start + batch_size], k=depth, mode=mode, highlight=False)
            seconds += time.perf_counter() - began
        row = scorer.score(hits)
        row["qps"] = len(texts) / seconds if seconds > 0 else float("inf")
        results[mode] = row
    abstentions = [
        _abstention(retriever, mode, texts, [q.text for q in unanswerable], batch_size, min_confidence)
        for mode in (results if unanswerable else ())
    ]
    # Untimed, after the modes: it encodes the questions once more and searches exactly.
    dense_used = any(mode != "lexical" for mode in results)
    ann = ann_recall(retriever, texts) if measure_ann and dense_used else None
    return EvaluationReport(results, len(questions), str(retriever.path), dataset, depth, ann, abstentions)


ABSTENTION_K = 10  # the hits a reader sees on the first page: the best of them decides "answerable"


def _abstention(
    retriever: Retriever,
    mode: str,
    answerable: Sequence[str],
    unanswerable: Sequence[str],
    batch_size: int,
    min_confidence: float | None,
) -> Abstention:
    """One mode's abstention figures: best-hit confidences of both question sets, at the bar the searches used."""
    results = [
        result
        for texts in (answerable, unanswerable)
        for start in range(0, len(texts), batch_size)
        for result in retriever.search_batch_with_status(
            texts[start : start + batch_size], ABSTENTION_K, min_confidence=min_confidence, mode=mode, highlight=False
        )
    ]
    best = [r.confidence if r.confidence is not None else 0.0 for r in results]
    bar = results[0].min_confidence  # the searches resolved it: the one asked, else the calibration's for the mode
    split = len(answerable)
    return abstention(mode, best[:split], best[split:], bar if bar is not None else 0.0)


class _Scorer:
    """Per-question metrics averaged per metric; passage tokens are cached across questions and modes, since
    the same passages come back again and again."""

    def __init__(self, questions: Sequence[Question], depth: int) -> None:
        self.questions = questions
        self.depth = depth
        self.answers = [tuple(t for t in map(answer_tokens, q.answers) if t) for q in questions]
        self._tokens: dict[int, tuple[str, ...]] = {}

    def score(self, results: Sequence[Sequence[Hit]]) -> dict[str, float]:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(name: str, value: float) -> None:
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1

        qrels: dict[str, dict[str, int]] = {}
        run: dict[str, dict[str, float]] = {}
        for i, (question, hits) in enumerate(zip(self.questions, results, strict=True)):
            answers = self.answers[i]
            found = [has_answer(answers, self._passage_tokens(h)) for h in hits] if answers else []
            if answers:
                for k in (k for k in ANSWER_KS if k <= self.depth):
                    add(f"answer@{k}", float(any(found[:k])))
            documents = document_ranking(hits)
            ranked = [doc for doc, _ in documents]
            if question.qrels:
                qrels[str(i)] = dict(question.qrels)
                run[str(i)] = dict(documents)
            elif question.gold_documents:
                for k in (k for k in RECALL_KS if k <= self.depth):
                    add(f"recall@{k}", gold_recall(ranked, question.gold_documents, k))
            if self.depth >= MRR_K:
                if question.gold_documents or question.qrels:
                    gold = set(question.gold_documents)
                    add(f"mrr@{MRR_K}", reciprocal_rank([doc in gold for doc in ranked], MRR_K))
                elif answers:
                    add(f"mrr@{MRR_K}", reciprocal_rank(found, MRR_K))
        for per_query in qrels_metrics(qrels, run, self.depth).values():
            for name, value in per_query.items():
                add(name, value)
        means = {name: sums[name] / counts[name] for name in sums}
        return {name: means[name] for name in METRIC_ORDER if name in means}

    def _passage_tokens(self, hit: Hit) -> tuple[str, ...]:
        tokens = self._tokens.get(hit.passage_id)
        if tokens is None:
            tokens = self._tokens[hit.passage_id] = answer_tokens(hit.text)
        return tokens
