"""Offline: read a corpus, clean it, split it into passages, embed them, and write an index bundle."""

from index_build.build import BuildError, BuildOptions, BuildReport, ReuseRefused, RunOptions, build_index
from index_build.documents import CorpusError, Document, Section

__all__ = [
    "BuildError",
    "BuildOptions",
    "BuildReport",
    "CorpusError",
    "Document",
    "ReuseRefused",
    "RunOptions",
    "Section",
    "build_index",
]
