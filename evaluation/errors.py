"""The one error evaluation raises, so that the CLI can print it as one line like every other user mistake."""

from __future__ import annotations

from retriever.errors import GroundsearchError


class EvaluationError(GroundsearchError):
    """A question file, qrels folder or evaluation option cannot be used: missing, malformed or out of range."""
