"""Choose the hybrid fusion by measurement: every fusion variant on the same dense and lexical candidates.

    .venv/bin/groundsearch build tests/data/squad/squad-dev-v1.1-part-a.json --format squad --out /tmp/squad.idx
    .venv/bin/python bench/fusion.py /tmp/squad.idx --qa tests/data/squad/squad-dev-v1.1-part-a.json

Each retriever is asked once per question for its `--depth` best passages; every variant (method, dense
weight, RRF constant, candidate depth) is then a pure function of those lists, so the comparison is exact and
cheap. To keep the choice honest the questions are split in two halves (even / odd positions): variants are
ranked on the "tune" half, and the table shows the same variants on the "check" half they were not chosen on.
Metrics: gold-paragraph recall@k (passages rolled up to their document by best rank) and answer@k (DPR's
has_answer with SQuAD normalisation), k = 1, 5, 20, 100.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evaluation.metrics import answer_tokens, has_answer  # noqa: E402
from evaluation.questions import Question, read_questions  # noqa: E402
from retriever import Retriever  # noqa: E402
from retriever.fusion import DEFAULT_FUSION, Fusion, fuse  # noqa: E402

KS = (1, 5, 20, 100)
Ranked = list[int]  # passage ids, best first


def candidates(retriever: Retriever, texts: list[str], depth: int) -> tuple[list, list, float, float]:
    started = time.perf_counter()
    dense: list = []
    for i in range(0, len(texts), 256):
        dense.extend(retriever.dense_candidates(texts[i : i + 256], depth))
    dense_s = time.perf_counter() - started
    started = time.perf_counter()
    lexical = retriever.lexical_candidates(texts, depth)
    return dense, lexical, dense_s, time.perf_counter() - started


def scores(
    runs: Sequence[Ranked], questions: Sequence[Question], doc_of: dict[int, str], tokens_of: dict[int, tuple[str, ...]]
) -> dict[str, float]:
    """Mean recall@k (gold document), answer@k and MRR@10 (gold document) of ranked passage lists."""
    totals = {f"recall@{k}": 0.0 for k in KS} | {f"answer@{k}": 0.0 for k in KS} | {"mrr@10": 0.0}
    for run, question in zip(runs, questions, strict=True):
        answers = [answer_tokens(a) for a in question.answers]
        documents = list(dict.fromkeys(doc_of[pid] for pid in run))
        gold = set(question.gold_documents)
        first_gold = next((i for i, d in enumerate(documents, 1) if d in gold), None)
        first_answer = next((i for i, pid in enumerate(run, 1) if has_answer(answers, tokens_of[pid])), None)
        for k in KS:
            totals[f"recall@{k}"] += first_gold is not None and first_gold <= k
            totals[f"answer@{k}"] += first_answer is not None and first_answer <= k
        if first_gold is not None and first_gold <= 10:
            totals["mrr@10"] += 1.0 / first_gold
    return {name: value / len(runs) for name, value in totals.items()}


def variants() -> list[tuple[str, Fusion | None]]:
    out: list[tuple[str, Fusion | None]] = [("dense", None), ("lexical", None)]
    for depth in (20, 50, 100, 200):
        for rrf_k in (10, 30, 60):
            for weight in (0.3, 0.4, 0.5, 0.6):
                out.append((f"rrf k={rrf_k} w={weight} d={depth}", Fusion("rrf", weight, rrf_k, depth)))
        for method in ("minmax", "zscore"):
            for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
                out.append((f"{method} w={weight} d={depth}", Fusion(method, weight, 60, depth)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path)
    ap.add_argument("--qa", type=Path, required=True)
    ap.add_argument("--depth", type=int, default=200, help="candidates asked of each retriever")
    ap.add_argument("--top", type=int, default=12, help="variants shown besides the single modes and the default")
    args = ap.parse_args()

    retriever = Retriever.open(args.index)
    questions = read_questions(args.qa)
    texts = [q.text for q in questions]
    dense, lexical, dense_s, lexical_s = candidates(retriever, texts, args.depth)
    ids = sorted({pid for run in dense + lexical for pid, _ in run})
    hits = {pid: retriever.get(pid) for pid in ids}
    doc_of = {pid: hit.source_id for pid, hit in hits.items()}
    tokens_of = {pid: answer_tokens(hit.text) for pid, hit in hits.items()}
    print(
        f"{len(questions):,} questions, {len(retriever):,} passages; candidates at depth {args.depth}: "
        f"dense {len(texts) / dense_s:,.0f} q/s, lexical {len(texts) / lexical_s:,.0f} q/s"
    )

    halves = {"tune": list(range(0, len(questions), 2)), "check": list(range(1, len(questions), 2))}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, fusion in [*variants(), ("default", DEFAULT_FUSION)]:
        if fusion is None:
            runs = [[pid for pid, _ in (dense if name == "dense" else lexical)[i][:100]] for i in range(len(texts))]
        else:
            runs = [
                [f.passage_id for f in fuse(dense[i][: fusion.depth], lexical[i][: fusion.depth], fusion)[:100]]
                for i in range(len(texts))
            ]
        results[name] = {
            half: scores([runs[i] for i in idx], [questions[i] for i in idx], doc_of, tokens_of)
            for half, idx in [*halves.items(), ("all", list(range(len(questions))))]
        }

    def best_single(half: str, metric: str) -> float:
        return max(results["dense"][half][metric], results["lexical"][half][metric])

    metrics = [f"recall@{k}" for k in KS] + [f"answer@{k}" for k in KS] + ["mrr@10"]

    def margin(name: str, half: str) -> float:
        """The worst lead over the best single mode, across every metric: > 0 means it beats both everywhere."""
        return min(results[name][half][m] - best_single(half, m) for m in metrics)

    fused = [name for name, f in variants() if f is not None]
    ranked = sorted(fused, key=lambda n: (margin(n, "tune"), results[n]["tune"]["recall@1"]), reverse=True)
    shown = ["dense", "lexical", "default", *[n for n in ranked[: args.top] if n != "default"]]
    head = ["variant", "half", *metrics, "margin"]
    rows = [head]
    for name in shown:
        for half in ("tune", "check", "all"):
            r = results[name][half]
            rows.append([name, half, *(f"{r[m]:.3f}" for m in metrics), f"{margin(name, half):+.3f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    winner = ranked[0]
    print(
        f"\nbest on the tune half: {winner} (margin tune {margin(winner, 'tune'):+.3f}, "
        f"check {margin(winner, 'check'):+.3f}); current default: {replace(DEFAULT_FUSION)}"
    )


if __name__ == "__main__":
    main()
