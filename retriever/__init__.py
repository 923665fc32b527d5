"""Query time: open an index bundle, embed a query, search, and return verbatim, cited passages."""

from retriever.bundle import Manifest, read_manifest
from retriever.errors import (
    GroundsearchError,
    IndexCorrupt,
    IndexNotFound,
    InvalidQuery,
    ModelMismatch,
    ModelUnavailable,
    PassageNotFound,
)
from retriever.fusion import DEFAULT_FUSION, Fusion
from retriever.highlight import Highlighter
from retriever.hit import Found, Hit, Span
from retriever.model import DEFAULT_MODEL, Encoder
from retriever.rerank import Reranker
from retriever.retriever import MODES, Retriever

__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_MODEL",
    "Encoder",
    "Found",
    "Fusion",
    "GroundsearchError",
    "Highlighter",
    "Hit",
    "IndexCorrupt",
    "IndexNotFound",
    "InvalidQuery",
    "MODES",
    "Manifest",
    "ModelMismatch",
    "ModelUnavailable",
    "PassageNotFound",
    "Reranker",
    "Retriever",
    "Span",
    "read_manifest",
]
