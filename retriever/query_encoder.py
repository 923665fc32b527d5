"""Choose what embeds a bundle's queries: its ONNX graph (no torch) or the sentence-transformers model."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from retriever.bundle import Manifest
from retriever.errors import InvalidQuery

ENCODERS = ("auto", "onnx", "torch")


class QueryEncoder(Protocol):
    """What search needs of an encoder: unit-length float32 vectors of the index's dimension."""

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


def choose_encoder(manifest: Manifest, encoder: str, device: str | None, model: str | None) -> str:
    """ "onnx" or "torch" for this bundle and these options; see `open_query_encoder`."""
    if encoder not in ENCODERS:
        raise InvalidQuery(f"unknown encoder {encoder!r}; the encoders are {', '.join(ENCODERS)}")
    if encoder != "auto":
        return encoder
    on_cpu = device is None or device == "cpu"
    return "onnx" if manifest.query_encoder is not None and model is None and on_cpu else "torch"


def open_query_encoder(
    bundle: Path, manifest: Manifest, encoder: str = "auto", device: str | None = None, model: str | None = None
) -> QueryEncoder:
    """The bundle's query encoder. "torch" loads the model (imports torch) and checks its weights against the
    manifest; "onnx" checks the graph's sha256 and never imports torch."""
    if choose_encoder(manifest, encoder, device, model) == "onnx":
        from retriever.onnx_encoder import OnnxEncoder

        return OnnxEncoder.from_manifest(bundle, manifest)
    from retriever.model import Encoder

    loaded = Encoder(model or manifest.model.name, device=device)
    loaded.check_matches(manifest.model.weights_sha256, manifest.model.dimension, manifest.model.name)
    return loaded
