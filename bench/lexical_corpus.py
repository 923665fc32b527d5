"""The corpus for bench/lexical_engines.py: real sentences recombined into passages, and 10-word questions."""

from __future__ import annotations

import json
import os
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("GROUNDSEARCH_SHARED_DATA") or ROOT / "tests" / "data")
SQUAD = SHARED / "squad" / "squad-dev-v1.1-part-a.json"
WIKI = SHARED / "wiki"


def split_sentences(text: str) -> list[str]:
    out = []
    for para in text.split("\n"):
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])", para.strip()):
            n = len(s.split())
            if 4 <= n <= 80:
                out.append(s)
    return out


def load_squad() -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
    """(title, paragraph) for every paragraph; (question, paragraph index) for every question."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))
    paragraphs: list[tuple[str, str]] = []
    questions: list[tuple[str, int]] = []
    for article in data["data"]:
        title = article["title"].replace("_", " ")
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                questions.append((qa["question"], len(paragraphs)))
            paragraphs.append((title, p["context"]))
    return paragraphs, questions


def load_sentences(workdir: Path) -> tuple[list[str], list[str]]:
    """Sentences and titles of real text, cached in workdir (the readers are the slow part)."""
    cache = workdir / "sentences.json"
    if cache.exists():
        d = json.loads(cache.read_text(encoding="utf-8"))
        return d["sentences"], d["titles"]
    from index_build.readers import open_corpus

    sentences: list[str] = []
    titles: list[str] = []
    paragraphs, _ = load_squad()
    for _title, text in paragraphs:
        sentences.extend(split_sentences(text))
    titles.extend(sorted({t for t, _ in paragraphs}))
    for path in sorted(WIKI.iterdir()):
        if path.name.startswith("bgwiki"):  # Bulgarian: not English text
            continue
        for doc in open_corpus(path, workers=2):
            titles.append(doc.title)
            sentences.extend(split_sentences(doc.text))
    seen: set[str] = set()
    sentences = [s for s in sentences if not (s in seen or seen.add(s))]
    titles = sorted(set(titles))
    cache.write_text(json.dumps({"sentences": sentences, "titles": titles}), encoding="utf-8")
    return sentences, titles


def synthetic_passages(n: int, seed: int, sentences: list[str], titles: list[str]) -> Iterator[tuple[int, str, str]]:
    """(id, title, text) for ids 1..n: random sentences appended until ~100 words. Same seed, same passages."""
    rng = random.Random(seed)
    lengths = [len(s.split()) for s in sentences]
    ns, nt = len(sentences), len(titles)
    for pid in range(1, n + 1):
        picked: list[str] = []
        words = 0
        while words < 90 and len(picked) < 8:
            i = rng.randrange(ns)
            picked.append(sentences[i])
            words += lengths[i]
        yield pid, titles[rng.randrange(nt)], " ".join(picked)


def ten_word_queries(questions: list[str], count: int, seed: int) -> list[str]:
    """SQuAD questions truncated, or padded with the next question's words, to exactly 10 words."""
    rng = random.Random(seed)
    order = list(range(len(questions)))
    rng.shuffle(order)
    out = []
    for j in range(count):
        words = questions[order[j % len(order)]].split()
        k = j + 1
        while len(words) < 10:
            words += questions[order[k % len(order)]].split()
            k += 1
        out.append(" ".join(words[:10]))
    return out
