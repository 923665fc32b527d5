"""The web edge: a search page and a JSON API over one `Retriever`. Validation and formatting only."""

from web.app import create_app
from web.models import InfoResponse, Limits, Passage, SearchHit, SearchResponse

__all__ = ["InfoResponse", "Limits", "Passage", "SearchHit", "SearchResponse", "create_app"]
