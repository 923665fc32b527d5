"""Query time: open an index bundle, embed a query, search, and return verbatim, cited passages."""

import os

# FAISS's OpenMP threads otherwise spin-wait after every search, holding a core that the query encoder's threads
# need next: on 2 cores a single dense search measured p50 16.0-16.7 ms with OMP_WAIT_POLICY=ACTIVE and 6.9-7.1
# ms with PASSIVE, in one run. It only takes effect before the OpenMP runtime loads (the first faiss import),
# and a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from retriever.bundle import Manifest, read_manifest
from retriever.confidence import Calibration
from retriever.errors import (
    FilterMatchesNothing,
    GroundsearchError,
    IndexCorrupt,
    IndexNotFound,
    InvalidQuery,
    ModelMismatch,
    ModelUnavailable,
    PassageNotFound,
    ServerError,
    ServerUnavailable,
)
from retriever.filters import Filter
from retriever.fusion import DEFAULT_FUSION, Fusion
from retriever.highlight import Highlighter
from retriever.hit import Context, Found, Hit, SearchResult, Span
from retriever.model import DEFAULT_MODEL, Encoder
from retriever.remote import RemoteRetriever
from retriever.rerank import Reranker
from retriever.retriever import MODES, Retriever

__all__ = [
    "Calibration",
    "Context",
    "DEFAULT_FUSION",
    "DEFAULT_MODEL",
    "Encoder",
    "Filter",
    "FilterMatchesNothing",
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
    "RemoteRetriever",
    "Reranker",
    "Retriever",
    "SearchResult",
    "ServerError",
    "ServerUnavailable",
    "Span",
    "read_manifest",
]
