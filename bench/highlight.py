"""Choose the highlight scorer by measurement: which span of the gold passage does each scorer pick?

    .venv/bin/groundsearch build tests/data/squad/squad-dev-v1.1-part-a.json --format squad --out /tmp/squad.idx
    .venv/bin/python bench/highlight.py /tmp/squad.idx --qa tests/data/squad/squad-dev-v1.1-part-a.json

Every question is paired with the passage of its gold paragraph that holds its first gold answer (SQuAD's
`answer_start`, mapped into the passage: with `--format squad` the article is the paragraph's context and a
passage is its slice `[start:end]`). Each variant picks one candidate span of that passage; the table gives

- span: the share of questions whose chosen span contains a gold answer's character span;
- text: the share whose chosen span contains a gold answer's text (SQuAD normalisation, whole tokens, as
  `has_answer` matches it), which also credits the answer said again in another sentence;
- chars: the mean length of the chosen span, and the share of the passage it covers (a longer span finds the
  answer more easily: the whole passage always does);
- ms/hit: time to choose one hit's span, on this machine, with hits scored ten at a time as a k=10 search
  does, the query vectors given (the dense search has made them). "random" is the expected value of a
  uniformly random candidate, computed exactly; "first" is the passage's first sentence.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evaluation.metrics import answer_tokens, has_answer  # noqa: E402
from index_build.readers.squad import paragraph_id  # noqa: E402
from retriever import Retriever  # noqa: E402
from retriever.bundle import STORE_NAME  # noqa: E402
from retriever.highlight import CLAUSE_CHARS, Highlighter, best, candidate_spans, lexical_scores  # noqa: E402


@dataclass(frozen=True)
class Case:
    question: str
    text: str  # the passage
    answers: tuple[tuple[int, int], ...]  # gold answer spans, passage-relative, those inside the passage
    answer_texts: tuple[str, ...]


def cases(index: Path, qa: Path) -> tuple[list[Case], int]:
    """Each question with its gold passage, and how many questions had no passage holding their answer."""
    conn = sqlite3.connect(f"{(index / STORE_NAME).resolve().as_uri()}?mode=ro", uri=True)
    passages: dict[str, list[tuple[int, int, str]]] = {}
    for source_id, start, end, text in conn.execute(
        'SELECT d.source_id, p.start, p."end", p.text FROM passages p JOIN documents d ON d.id = p.document_id'
    ):
        passages.setdefault(source_id, []).append((start, end, text))
    out: list[Case] = []
    missed = 0
    for a, article in enumerate(json.loads(qa.read_text(encoding="utf-8"))["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            for qa_item in paragraph["qas"]:
                golds = [(x["answer_start"], x["answer_start"] + len(x["text"]), x["text"]) for x in qa_item["answers"]]
                first = golds[0]
                home = next(
                    (x for x in passages.get(paragraph_id(a, p), []) if x[0] <= first[0] and first[1] <= x[1]), None
                )
                if home is None:
                    missed += 1
                    continue
                start, end, text = home
                spans = tuple((s - start, e - start) for s, e, _ in golds if start <= s and e <= end)
                out.append(Case(qa_item["question"], text, spans, tuple(g[2] for g in golds)))
    return out, missed


def judge(case: Case, span: tuple[int, int]) -> tuple[bool, bool]:
    s, e = span
    contains = any(s <= a and b <= e for a, b in case.answers)
    text = has_answer([answer_tokens(t) for t in case.answer_texts], answer_tokens(case.text[s:e]))
    return contains, text


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def timed(highlighter: Highlighter, sample: Sequence[Case], vectors: np.ndarray) -> float:
    """Milliseconds per hit, ten hits per call as in a k=10 search."""
    started = time.perf_counter()
    for i in range(0, len(sample), 10):
        group = sample[i : i + 10]
        highlighter.highlight_batch([c.question for c in group], [[c.text] for c in group], vectors[i : i + 10])
    return 1000 * (time.perf_counter() - started) / len(sample)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path)
    ap.add_argument("--qa", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions")
    ap.add_argument("--timing", type=int, default=200, help="questions timed per scorer")
    args = ap.parse_args()

    retriever = Retriever.open(args.index)
    all_cases, missed = cases(args.index, args.qa)
    all_cases = all_cases[: args.limit]
    encoder, lexical = retriever._encoder, retriever._lexical
    hl = Highlighter(encoder, lexical, "lexical")
    plain = Highlighter(encoder, None, "lexical")  # equal weights: what an index without BM25 gets
    print(f"{len(all_cases):,} questions paired with their gold passage ({missed} with no passage holding it)")
    started = time.perf_counter()
    qvecs = encoder.encode([c.question for c in all_cases])
    print(f"queries encoded in {time.perf_counter() - started:.1f} s")

    splitters = {"sentences": None, "clauses@400": 400, f"clauses@{CLAUSE_CHARS}": CLAUSE_CHARS, "clauses@150": 150}
    splits = {name: [candidate_spans(c.text, max_chars) for c in all_cases] for name, max_chars in splitters.items()}
    # Each distinct candidate is encoded once, whichever splitters produce it.
    unique = sorted(
        {c.text[s:e] for spans in splits.values() for c, ss in zip(all_cases, spans, strict=True) for s, e in ss}
    )
    started = time.perf_counter()
    vector_of = dict(zip(unique, encoder.encode(unique), strict=True))
    print(f"{len(unique):,} distinct candidates encoded in {time.perf_counter() - started:.1f} s")
    picks: dict[str, list[tuple[int, int]]] = {}
    random_scores: dict[str, tuple[float, float, float, float]] = {}
    for split_name, spans in splits.items():
        cosines, idf, uniform = [], [], []
        for i, (c, ss) in enumerate(zip(all_cases, spans, strict=True)):
            cosines.append(np.stack([vector_of[c.text[s:e]] for s, e in ss]) @ qvecs[i])
            terms = hl.span_terms(c.text, ss)
            weights = hl.query_weights(c.question)
            total = sum(weights.values()) or 1.0
            idf.append(np.asarray(lexical_scores(weights, terms)) / total)
            uniform.append(np.asarray(lexical_scores(plain.query_weights(c.question), terms)))
        # name: weights of (cosine, IDF share, equal-weight overlap)
        scorers = {
            "lexical (idf)": (0.0, 1.0, 0.0),
            "lexical (no idf)": (0.0, 0.0, 1.0),
            "embedding": (1.0, 0.0, 0.0),
            "combined w=0.5": (1.0, 0.5, 0.0),
            "combined w=1": (1.0, 1.0, 0.0),
            "combined w=2": (1.0, 2.0, 0.0),
            "lexical, embedding on ties": (1e-3, 1.0, 0.0),
        }
        picks[f"first sentence ({split_name})"] = [ss[0] for ss in spans]
        for name, (a, b, u) in scorers.items():
            picks[f"{name} ({split_name})"] = [
                ss[best(a * cosines[i] + b * idf[i] + u * uniform[i])] for i, ss in enumerate(spans)
            ]
        totals = np.zeros(4)
        for c, ss in zip(all_cases, spans, strict=True):
            judged = [judge(c, s) for s in ss]
            totals += [
                np.mean([j[0] for j in judged]),
                np.mean([j[1] for j in judged]),
                np.mean([e - s for s, e in ss]),
                np.mean([(e - s) / len(c.text) for s, e in ss]),
            ]
        random_scores[f"random ({split_name})"] = tuple(totals / len(all_cases))  # type: ignore[assignment]

    timings: dict[str, float] = {}
    sample = all_cases[: args.timing]
    for scorer in ("lexical", "embedding", "combined"):
        for split_name, max_chars in splitters.items():
            if scorer != "lexical" and split_name != "sentences":
                timings[f"{scorer}|{split_name}"] = float("nan")  # as costly as sentences: no need to wait again
                continue
            timings[f"{scorer}|{split_name}"] = timed(Highlighter(encoder, lexical, scorer, max_chars), sample, qvecs)

    def ms(name: str) -> str:
        kind = "embedding" if name.startswith("embedding") else "combined" if name.startswith("combined") else ""
        kind = kind or ("lexical" if name.startswith("lexical") else "")
        split_name = name[name.rindex("(") + 1 : -1]
        value = timings[f"{kind}|{split_name}"] if kind and "ties" not in name else float("nan")
        return "-" if np.isnan(value) else f"{value:.2f}"

    rows = [["variant", "span", "text", "chars", "of passage", "ms/hit"]]
    for name, (span_rate, text_rate, chars, share) in random_scores.items():
        rows.append([name, f"{span_rate:.3f}", f"{text_rate:.3f}", f"{chars:.0f}", f"{share:.2f}", "-"])
    for name, chosen in picks.items():
        judged = [judge(c, s) for c, s in zip(all_cases, chosen, strict=True)]
        chars = np.mean([e - s for s, e in chosen])
        share = np.mean([(e - s) / len(c.text) for c, (s, e) in zip(all_cases, chosen, strict=True)])
        rows.append(
            [
                name,
                f"{np.mean([j[0] for j in judged]):.3f}",
                f"{np.mean([j[1] for j in judged]):.3f}",
                f"{chars:.0f}",
                f"{share:.2f}",
                ms(name),
            ]
        )
    rows.append(["whole passage", "1.000", "1.000", f"{np.mean([len(c.text) for c in all_cases]):.0f}", "1.00", "-"])
    print(table(rows))


if __name__ == "__main__":
    main()
