"""What every search side does to a query's text before it sees it, so that dense and lexical read the same words."""

from __future__ import annotations

# The rest of a longer query is ignored, never an error: the encoder truncates at 256 tokens anyway, and BM25
# over thousands of words is a scan of the whole index.
MAX_QUERY_CHARS = 10_000


def clean_query(text: str) -> str:
    """Bound the length and drop lone surrogates, which JSON and Python strings can carry but no tokenizer takes."""
    text = text[:MAX_QUERY_CHARS]
    return text.encode("utf-8", errors="ignore").decode("utf-8")
