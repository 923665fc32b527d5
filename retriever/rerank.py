"""Optional second stage: a cross-encoder reads the query beside each candidate passage and reorders them.

A cross-encoder sees query and passage together, so it judges relevance better than comparing two vectors,
at the price of one forward pass per candidate: it only ever reorders the first stage's top `depth`. It
changes the order and the scores, never the passages: every reranked hit is still a stored passage, verbatim.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from retriever.bundle import TEXT_TEMPLATE, embedding_text
from retriever.errors import InvalidQuery, ModelUnavailable
from retriever.hit import Hit
from retriever.model import pick_device, require_torch, resolve_model_dir

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

DEFAULT_DEPTH = 50


class Reranker:
    """A sentence-transformers CrossEncoder (local folder or hub name), safe to share between threads."""

    def __init__(self, model: str, device: str | None = None, depth: int = DEFAULT_DEPTH, batch_size: int = 32) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise InvalidQuery(f"rerank depth must be a whole number >= 1, got {depth!r}")
        require_torch("reranking")
        self.name = model
        self.depth = depth
        self.batch_size = batch_size
        self.folder = resolve_model_dir(model)
        self.device = pick_device(device)
        self._model = _load(self.folder, self.device)
        self._lock = threading.Lock()  # fast tokenizers refuse concurrent use of one instance

    def rerank(self, query: str, hits: Sequence[Hit], template: str = TEXT_TEMPLATE) -> list[Hit]:
        """`hits` reordered by the cross-encoder's score, best first, with new ranks and scores.

        The passage is shown to the model with its title and section, as the embedding model saw it;
        `found_by` keeps the first stage's ranks, so a client can see what the reranker moved.
        """
        if not hits:
            return []
        texts = [embedding_text(h.title, h.section, h.text, template) for h in hits]
        with self._lock:
            scores = self._model.predict(
                [(query, text) for text in texts], batch_size=self.batch_size, show_progress_bar=False
            )
        order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), hits[i].rank))
        return [replace(hits[i], rank=rank, score=float(scores[i])) for rank, i in enumerate(order, start=1)]


def _load(folder: Path, device: str) -> CrossEncoder:
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = CrossEncoder(str(folder), device=device, local_files_only=True)
    except Exception as exc:
        raise ModelUnavailable(f"{folder}: cannot load as a sentence-transformers CrossEncoder ({exc})") from exc
    if device.startswith("cuda"):
        model.model.half()
    model.model.eval()
    return model
