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
from retriever.hit import Hit
from retriever.model import DEFAULT_MODEL, Encoder
from retriever.retriever import Retriever

__all__ = [
    "DEFAULT_MODEL",
    "Encoder",
    "GroundsearchError",
    "Hit",
    "IndexCorrupt",
    "IndexNotFound",
    "InvalidQuery",
    "Manifest",
    "ModelMismatch",
    "ModelUnavailable",
    "PassageNotFound",
    "Retriever",
    "read_manifest",
]
