"""Retrieval metrics as the papers we compare against compute them, so that our figures mean the same thing.

- answer@k (DPR's "top-k retrieval accuracy"): a top-k passage contains one of the answers, both normalised
  as SQuAD's evaluation script normalises answers, matched as a whole-token sequence as DPR's `has_answer`.
- recall@k (gold documents): passages are rolled up to the documents they come from (a document ranks where
  its best passage ranks; repeats are dropped) and recall@k is the share of gold documents in the top k.
  With one gold paragraph per question (SQuAD) it is the hit rate of the gold paragraph.
- mrr@10: the reciprocal rank of the first gold document within the top 10 documents when gold documents
  are known, else of the first answer-bearing passage within the top 10 passages.
- nDCG@10 and recall@k with graded qrels (BEIR): computed by pytrec_eval (trec_eval's own C code) from a run
  of document ids scored by their best passage's score, exactly as BEIR's EvaluateRetrieval does.

Depth is counted in passages: a search for 100 passages may cover fewer than 100 documents, so document
recall@100 is "within the documents the top 100 passages come from".
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence

import pytrec_eval

from retriever.hit import Hit

ANSWER_KS: tuple[int, ...] = (1, 5, 20, 100)
RECALL_KS: tuple[int, ...] = (1, 5, 20, 100)
MRR_K = 10
NDCG_K = 10

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's evaluation-script normalisation: lower case, drop ASCII punctuation, drop the articles
    a/an/the, collapse whitespace (same steps, same order)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def answer_tokens(text: str) -> tuple[str, ...]:
    """The normalised tokens of an answer or a passage, the unit `has_answer` matches on."""
    return tuple(normalize_answer(text).split())


def has_answer(answers: Iterable[Sequence[str]], passage: Sequence[str]) -> bool:
    """True when one of the (normalised, tokenised) answers occurs as a whole-token run in the passage.

    An answer that normalises to nothing (e.g. "the") never matches: DPR's loop would match it everywhere.
    """
    for answer in answers:
        n = len(answer)
        if not n:
            continue
        first = answer[0]
        for i in range(len(passage) - n + 1):
            if passage[i] == first and tuple(passage[i : i + n]) == tuple(answer):
                return True
    return False


def document_ranking(hits: Sequence[Hit]) -> list[tuple[str, float]]:
    """Documents (source ids) in the order of their best passage, each with its best passage's score.

    A hit without a score (never from a search) scores below every earlier one, so the order is kept.
    """
    best: dict[str, float] = {}
    for hit in hits:
        score = hit.score if hit.score is not None else -float(hit.rank)
        if hit.source_id not in best or score > best[hit.source_id]:
            best[hit.source_id] = score
    return list(best.items())


def gold_recall(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of the gold documents among the first k ranked documents."""
    if not gold:
        return 0.0
    top = set(ranked[:k])
    return sum(1 for g in set(gold) if g in top) / len(set(gold))


def reciprocal_rank(found: Sequence[bool], k: int) -> float:
    """1/rank of the first True among the first k, 0 when there is none."""
    for rank, ok in enumerate(found[:k], start=1):
        if ok:
            return 1.0 / rank
    return 0.0


def qrels_metrics(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], depth: int
) -> dict[str, dict[str, float]]:
    """nDCG@10 and recall@k per query, by pytrec_eval, under our key names (`ndcg@10`, `recall@5`, ...).

    Only cut-offs within `depth` are computed. A query pytrec_eval cannot score (no retrieved document)
    gets 0 for every measure, not a silent drop that would raise the mean as it would in BEIR.
    """
    wanted = {f"recall@{k}": f"recall_{k}" for k in RECALL_KS if k <= depth}
    if depth >= NDCG_K:
        wanted[f"ndcg@{NDCG_K}"] = f"ndcg_cut_{NDCG_K}"
    if not wanted or not qrels:
        return {}
    measures = {name.replace("_cut_", "_cut.").replace("recall_", "recall.") for name in wanted.values()}
    evaluator = pytrec_eval.RelevanceEvaluator({q: dict(r) for q, r in qrels.items()}, measures)
    scored = evaluator.evaluate({q: {d: float(s) for d, s in run.get(q, {}).items()} for q in qrels})
    return {q: {ours: float(scored.get(q, {}).get(theirs, 0.0)) for ours, theirs in wanted.items()} for q in qrels}
