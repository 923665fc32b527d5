"""Named errors. Each message is one line that tells the user what to do about it.

The CLI and the web app turn any `GroundsearchError` into a one-line message and a non-zero exit
(or an HTTP error); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GroundsearchError(Exception):
    """Base class of every error a user can cause and fix."""


class IndexNotFound(GroundsearchError):
    """The path given is not an index bundle."""


class IndexCorrupt(GroundsearchError):
    """A file inside the bundle is missing, truncated or does not match the manifest."""


class ModelMismatch(GroundsearchError):
    """The embedding model differs from the one the index was built with."""


class ModelUnavailable(GroundsearchError):
    """The embedding model cannot be found or loaded."""


class InvalidQuery(GroundsearchError):
    """A query or search parameter that cannot be answered (empty text, k < 1, ...)."""


class PassageNotFound(GroundsearchError, KeyError):
    """No passage has the id asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "passage not found"


class FilterMatchesNothing(InvalidQuery):
    """A search filter (document ids, titles, source files) selects no passage of the index."""


class ServerUnavailable(GroundsearchError):
    """A `RemoteRetriever` could not reach its server, or got no answer in time."""


class ServerError(GroundsearchError):
    """The server of a `RemoteRetriever` failed to answer a request it accepted (HTTP 5xx)."""
