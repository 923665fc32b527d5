"""Each passage's reuse key: the sha256 of everything that decides its vector, so that equal keys mean a vector
may be taken from another bundle instead of being embedded again (`build --reuse`, index_build.reuse).

What decides a passage's vector: the model's weights (their sha256, the project's identity of a model
everywhere), how many tokens of the text it reads (`max_seq_length`: a model that cuts at 128 tokens embeds a
long passage differently from one that cuts at 256), and the exact text embedded, the bundle's text template
applied (title, section and passage: a renamed article or section changes every one of its vectors). Pooling and
normalisation are fixed per model folder and the project normalises always. The ONNX query encoder is left out:
it embeds queries only, and passage vectors are made by the torch model at build time.

Keys are written as one uint8 (passages, 32) array, row = passage id: the staging directory's copy is what the
embedding stage looks up with, the bundle's `vectors.keys.npy` what a later build looks up in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index_build.embed import embedding_texts, npy_complete
from index_build.faults import stage_io
from index_build.vectors_writer import reserve
from retriever.bundle import VECTOR_KEY_VERSION, atomic_path
from retriever.store import PassageStore

KEY_BYTES = 32  # a sha256 digest
_BLOCK = 8192  # passages hashed per database read


@dataclass(frozen=True)
class KeyModel:
    """The model's part of every key: its weights and its truncation length."""

    weights_sha256: str
    max_length: int

    def head(self) -> bytes:
        """What every key hashes before the text: the key's version and the model's part, one per line."""
        return f"groundsearch vector key v{VECTOR_KEY_VERSION}\n{self.weights_sha256}\n{self.max_length}\n".encode()


def text_keys(model: KeyModel, texts: list[str]) -> np.ndarray:
    """The keys of `texts` (each an embedding text, the template applied), as a uint8 (len, 32) array."""
    head = hashlib.sha256(model.head())  # copied for each text: the shared part is hashed once
    out = np.empty((len(texts), KEY_BYTES), dtype=np.uint8)
    for row, text in enumerate(texts):
        digest = head.copy()
        digest.update(text.encode("utf-8"))
        out[row] = np.frombuffer(digest.digest(), dtype=np.uint8)
    return out


def write_keys(store: PassageStore, model: KeyModel, path: Path, progress: bool = True) -> np.ndarray:
    """The key of every passage of `store`, in id order, written to `path` (kept when complete) and returned
    memory-mapped. A block of passages at a time, so memory stays flat at any corpus size."""
    total = store.count()
    if not npy_complete(path, (total, KEY_BYTES), np.uint8):
        with stage_io("embedding", path), atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, KEY_BYTES))
            reserve(tmp)
            with tqdm(total=total, unit="passage", desc="reuse keys", disable=not progress) as bar:
                for first in range(0, total, _BLOCK):
                    last = min(first + _BLOCK, total)
                    out[first:last] = text_keys(model, embedding_texts(store, first, last))
                    bar.update(last - first)
            out.flush()
            del out
    with stage_io("embedding", path, "read"):
        keys: np.ndarray = np.load(path, mmap_mode="r")
    return keys


__all__ = ["KEY_BYTES", "KeyModel", "text_keys", "write_keys"]
