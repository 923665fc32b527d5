"""The lexical (BM25) side of a bundle: a tantivy index over the same passages, with the same ids.

tantivy was chosen over SQLite FTS5 by measurement (bench/lexical_engines.py): on one million passages a
10-word question takes well under a millisecond in tantivy (block-max WAND prunes the OR of its terms) and
tens to hundreds of milliseconds in FTS5, which scores every passage holding any term. Quality on SQuAD was
the same for both within 0.005.

User text never reaches a query parser: it is cut into terms by the same analyzer that indexed the passages,
and the terms are ORed as term queries. Quotes, `AND`, `*`, `title:`, parentheses are just words (or nothing).
The analyzer is defined here, once, because tantivy does not store it with the index: the build and every
open must register the same one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retriever.errors import IndexCorrupt
from retriever.query import clean_query

LEXICAL_DIR = "lexical"
TOKENIZER = "groundsearch_en"
ID_FIELD = "passage_id"
TEXT_FIELD = "text"
ENGINE = "tantivy"
META_LOCK = ".tantivy-meta.lock"
MAX_TOKEN_CHARS = 40  # longer "words" are base64, hashes or URLs: noise for BM25
MAX_QUERY_TERMS = 64  # distinct terms kept, in order of first appearance
# Hits fetched past k so that passages tied at the k-th score are chosen by passage id, not by where tantivy's
# writer threads put them (see LexicalIndex.search); exact unless more than this many tie across the cut.
TIE_MARGIN = 32

# Snowball's English stop list (as NLTK ships it), contractions as the pieces a word tokenizer leaves. It
# measured better than Lucene's shorter list on SQuAD questions (bench/lexical_engines.py), since questions
# are full of "what", "which", "did", "does".
STOP_WORDS = frozenset(
    (
        "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her "
        "hers herself it its itself they them their theirs themselves what which who whom this that these "
        "those am is are was were be been being have has had having do does did doing a an the and but if or "
        "because as until while of at by for with about against between into through during before after "
        "above below to from up down in out on off over under again further then once here there when where "
        "why how all any both each few more most other some such no nor not only own same so than too very s "
        "t can will just don should now d ll m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma "
        "mightn mustn needn shan shouldn wasn weren won wouldn"
    ).split()
)


@dataclass(frozen=True)
class LexicalInfo:
    """What the manifest records about the lexical index, so a reader can tell it how it was made."""

    engine: str
    engine_version: str
    directory: str
    analyzer: str
    stop_words: int
    bm25: str = "k1=1.2, b=0.75 (tantivy's fixed BM25)"


def _tantivy() -> Any:
    import tantivy

    return tantivy


def analyzer() -> Any:
    """Tokenise on non-alphanumerics, drop over-long tokens, lowercase, drop stop words, Snowball-stem."""
    tantivy = _tantivy()
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.custom_stopword(sorted(STOP_WORDS)))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def query_terms(analyzer: Any, text: str) -> list[str]:
    """A query's terms as `analyzer` (from `analyzer()`) cuts them: deduplicated, in order, at most 64."""
    return list(dict.fromkeys(analyzer.analyze(clean_query(text))))[:MAX_QUERY_TERMS]


def schema() -> Any:
    builder = _tantivy().SchemaBuilder()
    builder.add_integer_field(ID_FIELD, fast=True, stored=False, indexed=False)
    # "freq": term frequencies without positions, all BM25 needs; positions would double the index.
    builder.add_text_field(TEXT_FIELD, tokenizer_name=TOKENIZER, index_option="freq", stored=False)
    return builder.build()


def lexical_info() -> LexicalInfo:
    return LexicalInfo(
        engine=ENGINE,
        engine_version=engine_version(),
        directory=LEXICAL_DIR,
        analyzer="simple -> remove_long(40) -> lowercase -> stop words (Snowball English) -> stemmer(english)",
        stop_words=len(STOP_WORDS),
    )


def engine_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("tantivy")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - tantivy is a dependency
        return "unknown"


def _lock_writable(directory: Path) -> bool:
    """Whether tantivy can take its reader lock here: it opens `.tantivy-meta.lock` for writing, even to read."""
    lock = directory / META_LOCK
    return os.access(lock, os.W_OK) if lock.exists() else os.access(directory, os.W_OK)


def _shadow_of(directory: Path, shadow: Path) -> Path:
    """A writable folder of symlinks to a read-only index's files, so that tantivy can lock it and read it.

    A bundle on a read-only mount, or owned by another user, must still open: the lock file is the only thing
    tantivy writes when reading, and it lands in the temporary folder instead of the bundle.
    """
    for item in directory.iterdir():
        if item.is_file() and not item.name.startswith(".tantivy-"):
            (shadow / item.name).symlink_to(item.resolve())
    return shadow


def _best_first(hit: tuple[int, float]) -> tuple[float, int]:
    return (-hit[1], hit[0])


class LexicalIndex:
    """A read-only BM25 index. One searcher is shared by all threads (tantivy's searchers are thread-safe)."""

    def __init__(self, directory: Path) -> None:
        tantivy = _tantivy()
        if not (directory / "meta.json").exists():
            raise IndexCorrupt(f"{directory}: the lexical index is missing; rebuild the index")
        self._shadow: tempfile.TemporaryDirectory[str] | None = None
        if not _lock_writable(directory):
            self._shadow = tempfile.TemporaryDirectory(prefix="groundsearch-lexical-")
            directory = _shadow_of(directory, Path(self._shadow.name))
        try:
            self._index = tantivy.Index.open(str(directory))
        except ValueError as exc:
            raise IndexCorrupt(f"{directory}: unreadable lexical index ({exc}); rebuild the index") from None
        # A bundle never changes once built: no reload thread watching the directory.
        self._index.config_reader(reload_policy="manual")
        self._analyzer = analyzer()
        self._index.register_tokenizer(TOKENIZER, self._analyzer)
        self._schema = self._index.schema
        self._searcher = self._index.searcher()

    def __len__(self) -> int:
        return int(self._searcher.num_docs)

    def terms(self, text: str) -> list[str]:
        """The analysed terms of a query, deduplicated, in order: exactly what is searched for."""
        return query_terms(self._analyzer, text)

    def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        """How many passages hold each analysed term: what makes a rare word count for more in a highlight."""
        return {term: int(self._searcher.doc_freq(TEXT_FIELD, term)) for term in terms}

    def search(self, text: str, k: int, within: Any = None) -> list[tuple[int, float]]:
        """(passage id, BM25 score) of the k best passages, best first; [] when no term survives analysis.

        `within` (from `within_query`) restricts the search to some passages without changing their scores.
        """
        tantivy = _tantivy()
        clauses = [
            (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, TEXT_FIELD, term, index_option="freq"))
            for term in self.terms(text)
        ]
        if not clauses:
            return []
        query = tantivy.Query.boolean_query(clauses)
        if within is not None:
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, within)])
        # count=False lets tantivy skip blocks that cannot enter the top k (block-max WAND). Equal scores are
        # common (short queries, repeated boilerplate) and tantivy orders them by document address, which its
        # multi-threaded writer assigns in whatever order its threads took the passages: so a few more are asked
        # for and ties are put in passage-id order here, and two builds of one corpus answer alike.
        hits = self._searcher.search(query, k + TIE_MARGIN, count=False).hits
        if not hits:
            return []
        ids = self._searcher.fast_field_values(ID_FIELD, [address for _, address in hits])
        found = sorted(((int(pid), float(score)) for (score, _), pid in zip(hits, ids, strict=True)), key=_best_first)
        return found[:k]

    def search_batch(
        self, texts: Sequence[str], k: int, runs: Sequence[tuple[int, int]] | None = None
    ) -> list[list[tuple[int, float]]]:
        """`search` for each text; with `runs` (half-open passage id ranges), only passages inside them."""
        within = self.within_query(runs) if runs is not None else None
        return [self.search(text, k, within) for text in texts]

    def within_query(self, runs: Sequence[tuple[int, int]]) -> Any:
        """A clause matching the passages whose ids lie in `runs`, scoring 0 so that BM25 scores stay as they are.

        Range queries over the id's fast field: the bundle's id field is not indexed, so no term set can name ids.
        """
        tantivy = _tantivy()
        ranges = [
            (
                tantivy.Occur.Should,
                tantivy.Query.range_query(
                    self._schema, ID_FIELD, tantivy.FieldType.Integer, first, last, include_upper=False
                ),
            )
            for first, last in runs
        ]
        return tantivy.Query.const_score_query(tantivy.Query.boolean_query(ranges), 0.0)
