"""The span of a passage that best answers a query: a sentence (or a clause of a long one), never new text.

A highlight is a pair of offsets into the passage's verbatim text, so whatever shows it (CLI, page, client)
emphasises characters that are already there; `text[start:end]` is always a slice of the stored passage.

Candidates come from a small rule-based splitter written here (no model or data to download): line breaks,
then sentence ends that are not abbreviations or initials, and optionally, for sentences longer than
`max_chars`, clause boundaries (`;`, `:`, dashes, commas). Each candidate is scored against the query by:

- "lexical": the IDF mass of the query's analysed terms (the BM25 analyzer and the BM25 index's document
  frequencies) that the candidate holds, ties to the earlier candidate;
- "embedding": cosine similarity of the query and candidate vectors from the index's own model;
- "combined": both, `cosine + LEXICAL_WEIGHT * (share of the query's IDF mass held)`.

The defaults were chosen by measurement on 5,392 SQuAD questions, each with its gold passage
(bench/highlight.py): the chosen span holds the gold answer span for 84.9% with "lexical" over sentences,
79.9% with "embedding", 85.9% with "combined" (w=2), 39.4% for the first sentence and 34.9% for a random
one. "combined" gains one point for encoding every candidate sentence, 20 to 150 ms per hit on a two-core
CPU, against 0.1 to 0.2 ms for "lexical", so "lexical" is the default. Cutting long sentences into clauses
loses more answers than it saves characters (84.0% at 400 characters, 79.5% at 250), so a sentence is the
unit by default.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from retriever.hit import Span
from retriever.lexical import LexicalIndex, analyzer, query_terms
from retriever.query import clean_query

if TYPE_CHECKING:
    from retriever.query_encoder import QueryEncoder

SCORERS = ("lexical", "embedding", "combined")
DEFAULT_SCORER = "lexical"
DEFAULT_MAX_CHARS: int | None = None  # whole sentences: clauses measured worse (see above)
CLAUSE_CHARS = 250  # a length at which to cut sentences into clauses, for callers who want shorter spans
MIN_CLAUSE_CHARS = 40  # a shorter clause is merged into its neighbour: "In 1946," alone answers nothing
LEXICAL_WEIGHT = 2.0  # the best of 0.5, 1 and 2 for "combined"
# Passages whose split and analysis are kept between calls: a served index returns the same popular passages
# again and again, and a batch of questions about one article returns its passages to many of them.
CACHED_PASSAGES = 8192
# Query term weights: a search asks twice per query (the highlight, then the match confidence).
CACHED_QUERIES = 1024

# Words whose full stop does not end a sentence; single letters (initials, "c." for circa, "b." for born)
# are caught by length. "etc." is left out: it ends sentences more often than not.
_ABBREVIATIONS = frozenset(
    (
        "mr mrs ms dr prof st jr sr vs gen col lt sgt capt cmdr adm rev hon gov sen rep pres mt ft no nos vol "
        "vols ed eds pp fig figs approx ca fl inc ltd co corp bros dept univ jan feb mar apr jun jul aug sep "
        "sept oct nov dec est op cit al cf viz"
    ).split()
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]?")  # U.S, e.g, J.R.R; not 2.5
_CLAUSE_END = re.compile(r"[;:]\s+|\s+[—–-]{1,2}\s+|—|,\s+")


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _ends_sentence(text: str, line_start: int, match: re.Match[str]) -> bool:
    """Whether this stop ends a sentence: a cut inside "Dr. Smith" or "J. R. R. Tolkien" would mark half a name."""
    after = match.end()
    while after < len(text) and text[after].isspace() and text[after] != "\n":
        after += 1
    if after < len(text) and text[after].islower():
        return False  # "approx. ten", "the U.S. army"
    if match.group().rstrip("\"'”’»)]") == ".":  # "?", "!", "..." end a sentence whatever precedes them
        before = _WORD_BEFORE.search(text, line_start, match.start())
        if before:
            word = before.group(1)
            if (len(word) == 1 and word.isalpha()) or word.lower() in _ABBREVIATIONS or _INITIALS.fullmatch(word):
                return False
    return True


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, in order, trimmed of whitespace; every line break also ends one."""
    spans: list[tuple[int, int]] = []
    line_start = 0
    for line_end in [*(m.start() for m in re.finditer("\n", text)), len(text)]:
        start = line_start
        for match in _SENTENCE_END.finditer(text, line_start, line_end):
            if _ends_sentence(text, line_start, match):
                piece = _trimmed(text, start, match.end())
                if piece:
                    spans.append(piece)
                start = match.end()
        piece = _trimmed(text, start, line_end)
        if piece:
            spans.append(piece)
        line_start = line_end + 1
    return spans


def clause_spans(text: str, start: int, end: int, max_chars: int = CLAUSE_CHARS) -> list[tuple[int, int]]:
    """A long sentence as clauses no shorter than MIN_CLAUSE_CHARS; a short one as itself."""
    if end - start <= max_chars:
        return [(start, end)]
    cuts = [m.end() for m in _CLAUSE_END.finditer(text, start, end)]
    pieces: list[tuple[int, int]] = []
    begin = start
    for cut in [*cuts, end]:
        if cut - begin < MIN_CLAUSE_CHARS and cut != end:
            continue
        piece = _trimmed(text, begin, cut)
        if piece:
            if pieces and piece[1] - piece[0] < MIN_CLAUSE_CHARS:
                pieces[-1] = (pieces[-1][0], piece[1])  # a short tail joins the clause before it
            else:
                pieces.append(piece)
        begin = cut
    return pieces or [(start, end)]


def candidate_spans(text: str, max_chars: int | None = DEFAULT_MAX_CHARS) -> list[tuple[int, int]]:
    """The spans a highlight is chosen from: sentences, long ones cut into clauses (None: never cut)."""
    sentences = sentence_spans(text)
    if max_chars is None:
        return sentences
    return [clause for s, e in sentences for clause in clause_spans(text, s, e, max_chars)]


def lexical_scores(weights: Mapping[str, float], span_terms: Sequence[frozenset[str]]) -> list[float]:
    """The summed weight of the query terms each span holds (each term once, however often it appears)."""
    return [sum(w for term, w in weights.items() if term in terms) for terms in span_terms]


def best(scores: Sequence[float] | np.ndarray) -> int:
    """The index of the highest score; the earliest on a tie, since a passage's lead tends to say most. A list
    (a passage's few sentences) is scanned in Python: numpy's per-call cost would outweigh it."""
    if isinstance(scores, np.ndarray):
        return int(np.argmax(scores))
    return max(range(len(scores)), key=scores.__getitem__)


class Highlighter:
    """Chooses each hit's highlight with the index's own analyzer, document frequencies and model.

    Safe to share between threads: it holds no per-call state; the encoder serialises its own calls.
    """

    def __init__(
        self,
        encoder: QueryEncoder,
        lexical: LexicalIndex | None,
        scorer: str = DEFAULT_SCORER,
        max_chars: int | None = DEFAULT_MAX_CHARS,
    ) -> None:
        if scorer not in SCORERS:
            raise ValueError(f"unknown highlight scorer {scorer!r}; the scorers are {', '.join(SCORERS)}")
        self.scorer = scorer
        self.max_chars = max_chars
        self._encoder = encoder
        self._lexical = lexical
        # An index without a lexical side still has the analyzer; its terms are then weighted equally.
        self._analyzer = analyzer()
        self._cache: _LruCache[_Analysed] = _LruCache(CACHED_PASSAGES)
        self._weights: _LruCache[Mapping[str, float]] = _LruCache(CACHED_QUERIES)

    def query_weights(self, query: str) -> Mapping[str, float]:
        """IDF (as BM25 computes it) of each analysed query term; 1.0 each when the index has no BM25 side.
        Read-only: the mapping is cached and shared."""
        found = self._weights.get(query)
        if found is None:
            terms = query_terms(self._analyzer, query)
            if self._lexical is None:
                found = MappingProxyType(dict.fromkeys(terms, 1.0))
            else:
                n = len(self._lexical)
                freqs = self._lexical.doc_freqs(terms)
                found = MappingProxyType({t: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for t, df in freqs.items()})
            self._weights.put(query, found)
        return found

    def passage_terms(self, text: str) -> Collection[str]:
        """The analysed terms a passage holds: what its match confidence counts the query's terms against. From
        the highlight cache where the scorer keeps terms, so a highlighted hit pays nothing more for it."""
        if self.scorer == "embedding":
            return frozenset(self._analyzer.analyze(text))
        return self._analysed(text).term_spans.keys()

    def span_terms(self, text: str, spans: Sequence[tuple[int, int]]) -> list[frozenset[str]]:
        return [frozenset(self._analyzer.analyze(text[s:e])) for s, e in spans]

    def _analysed(self, text: str) -> _Analysed:
        """A passage's candidate spans and which spans hold each analysed term, from the cache where it has them."""
        with_terms = self.scorer != "embedding"
        key = (self.max_chars, with_terms, text)  # both are public attributes a caller may change
        found = self._cache.get(key)
        if found is None:
            spans = candidate_spans(text, self.max_chars)
            holders: dict[str, list[int]] = {}
            for number, terms in enumerate(self.span_terms(text, spans) if with_terms else []):
                for term in terms:
                    holders.setdefault(term, []).append(number)
            found = _Analysed(spans, {term: tuple(numbers) for term, numbers in holders.items()})
            self._cache.put(key, found)
        return found

    def highlight_batch(
        self, queries: Sequence[str], texts: Sequence[Sequence[str]], query_vectors: np.ndarray | None = None
    ) -> list[list[Span | None]]:
        """One highlight per passage of `texts[i]` for `queries[i]`; None for a passage with no words.

        With an embedding scorer every candidate of every passage goes through the encoder in one call, and
        `query_vectors` (the unit vectors the dense search already made) saves encoding the queries again.
        """
        # A passage's candidates and their terms depend on its text alone, so each distinct passage is split
        # and analysed once, however many queries of the batch (or earlier calls) return it.
        analysed = [[self._analysed(text) for text in group] for group in texts]
        spans = [[passage.spans for passage in group] for group in analysed]
        lexical: list[list[list[float]]] = []
        if self.scorer != "embedding":
            for query, group in zip(queries, analysed, strict=True):
                weights = self.query_weights(query)
                total = sum(weights.values()) or 1.0
                lexical.append([passage.lexical_scores(weights, total) for passage in group])
        dense: list[list[Any]] = []
        if self.scorer != "lexical":
            dense = self._cosines(queries, texts, spans, query_vectors)
        results: list[list[Span | None]] = []
        for i, group_spans in enumerate(spans):
            row: list[Span | None] = []
            for j, candidates in enumerate(group_spans):
                if not candidates:
                    row.append(None)
                    continue
                scores: Any
                if self.scorer == "lexical":
                    scores = lexical[i][j]
                elif self.scorer == "embedding":
                    scores = dense[i][j]
                else:
                    scores = dense[i][j] + LEXICAL_WEIGHT * np.asarray(lexical[i][j])
                row.append(Span(*candidates[best(scores)]))
            results.append(row)
        return results

    def _cosines(
        self,
        queries: Sequence[str],
        texts: Sequence[Sequence[str]],
        spans: list[list[list[tuple[int, int]]]],
        query_vectors: np.ndarray | None,
    ) -> list[list[np.ndarray]]:
        if query_vectors is None:
            query_vectors = self._encoder.encode([clean_query(q) for q in queries])
        pieces = [
            text[s:e]
            for group, group_spans in zip(texts, spans, strict=True)
            for text, cands in zip(group, group_spans, strict=True)
            for s, e in cands
        ]
        vectors = self._encoder.encode(pieces) if pieces else np.zeros((0, query_vectors.shape[1]), np.float32)
        out: list[list[np.ndarray]] = []
        at = 0
        for i, group_spans in enumerate(spans):
            row = []
            for cands in group_spans:
                row.append(vectors[at : at + len(cands)] @ query_vectors[i])
                at += len(cands)
            out.append(row)
        return out


@dataclass(frozen=True)
class _Analysed:
    """What a highlight needs of one passage, whatever the query: its candidate spans, and for each analysed
    term the numbers of the spans that hold it."""

    spans: list[tuple[int, int]]
    term_spans: dict[str, tuple[int, ...]]

    def lexical_scores(self, weights: Mapping[str, float], total: float) -> list[float]:
        """`lexical_scores` over the spans, divided by `total`: the same sums, added in the same order (the
        query's terms in order), visiting only the spans that hold a query term."""
        scores = [0.0] * len(self.spans)
        for term, weight in weights.items():
            for number in self.term_spans.get(term, ()):
                scores[number] += weight
        return [score / total for score in scores]


T = TypeVar("T")


class _LruCache(Generic[T]):
    """A bounded map from a passage's text (and settings) to what was computed from it; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: T) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
