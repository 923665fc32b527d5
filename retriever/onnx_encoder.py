"""Encode queries with the bundle's own ONNX graph: onnxruntime + tokenizers + numpy, no torch.

Importing torch and sentence-transformers costs a query process about 5 s and 300 MB before any work; the
graph the build exported (index_build.onnx_export) gives the same vectors (the build measures and records the
parity) from a process that starts in a fraction of a second. The steps are those of a sentence-transformers
Transformer + Pooling (+ Normalize) pipeline: tokenise with truncation at the model's max length, run the
transformer, pool the token embeddings under the attention mask, L2-normalise.

The graph and tokenizer are checked against the sha256 the manifest records before they are used: an altered
file would give other vectors silently, and a search over wrong vectors looks like a search that worked.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from retriever.bundle import Manifest, QueryEncoderInfo, sha256_file
from retriever.errors import IndexCorrupt, ModelUnavailable

POOLINGS = ("mean", "cls", "max")
_REBUILD = (
    "rebuild the index, or open it with the torch encoder (--encoder torch, Retriever.open(..., encoder='torch'))"
)


def default_threads() -> int:
    """Intra-op threads: the cores this process may run on. One encode at a time uses them all (see `_lock`),
    so concurrent requests queue for the encoder instead of oversubscribing the cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxEncoder:
    """The bundle's query encoder; callable from many threads (calls are serialised, see `default_threads`)."""

    device = "cpu"

    def __init__(self, bundle: Path, info: QueryEncoderInfo, name: str, dimension: int, threads: int | None = None):
        if info.pooling not in POOLINGS:
            raise IndexCorrupt(f"{bundle}: unknown pooling {info.pooling!r} in the manifest's query_encoder")
        self.info = info
        self.name = name
        self.dimension = dimension
        files = {bundle / info.onnx: info.onnx_sha256, bundle / info.tokenizer: info.tokenizer_sha256}
        weights = bundle / info.onnx_data
        for path in [*files, weights]:
            if not path.is_file():
                raise IndexCorrupt(
                    f"{bundle}: the query encoder file {path.relative_to(bundle)} is missing; {_REBUILD}"
                )
        # The graph (which names its weights file) and the tokenizer are small and checked first. Hashing the
        # weights (about 90 MB) and loading them take about as long each; hashlib releases the GIL, so the two
        # overlap, and nothing is encoded before that hash has matched too.
        with ThreadPoolExecutor(max_workers=1) as pool:
            weights_digest = pool.submit(sha256_file, weights)
            for path, expected in files.items():
                _check_digest(bundle, path, sha256_file(path), expected)
            self._tokenizer = _load_tokenizer(bundle / info.tokenizer, info)
            self._session = _load_session(bundle / info.onnx, threads or default_threads())
            _check_digest(bundle, weights, weights_digest.result(), info.onnx_data_sha256)
        self._lock = threading.Lock()

    @classmethod
    def from_manifest(cls, bundle: Path, manifest: Manifest, threads: int | None = None) -> OnnxEncoder:
        """The encoder of an opened bundle, refused unless it was exported from the index's own weights."""
        info = manifest.query_encoder
        if info is None:
            why = f" ({manifest.no_query_encoder})" if manifest.no_query_encoder else ""
            raise ModelUnavailable(
                f"{bundle}: this index has no ONNX query encoder{why}; open it with the torch encoder "
                "(--encoder torch) or rebuild it"
            )
        if info.weights_sha256 != manifest.model.weights_sha256:
            raise IndexCorrupt(f"{bundle}: the ONNX query encoder was exported from other weights than the index's")
        return cls(bundle, info, manifest.model.name, manifest.model.dimension, threads)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in order. Texts are batched shortest first (as
        sentence-transformers does), so a batch pads to little more than its own longest text."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
            order = np.argsort([len(e.ids) for e in encodings], kind="stable")
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                out[rows] = self._run([encodings[i] for i in rows])
        return out

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.info.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        tokens = self._session.run(None, {name: feeds[name] for name in self.info.inputs})[0]
        return pool(tokens, mask, self.info.pooling, self.info.normalize)


def pool(tokens: np.ndarray, mask: np.ndarray, pooling: str, normalize: bool) -> np.ndarray:
    """Sentence vectors from token embeddings (batch, length, dim), as sentence-transformers' Pooling and
    Normalize modules compute them: padding never counts."""
    weights = mask[..., None].astype(np.float32)
    if pooling == "mean":
        vectors = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    elif pooling == "cls":
        vectors = tokens[:, 0]
    else:  # "max": padding set far below any value so that it never wins
        vectors = np.where(weights > 0, tokens, np.float32(-1e9)).max(axis=1)
    vectors = vectors.astype(np.float32, copy=False)
    if normalize:
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _check_digest(bundle: Path, path: Path, digest: str, expected: str) -> None:
    if digest != expected:
        raise IndexCorrupt(
            f"{bundle}: {path.relative_to(bundle)} has sha256 {digest[:12]}…, the manifest says {expected[:12]}…; "
            f"{_REBUILD}"
        )


def _load_tokenizer(path: Path, info: QueryEncoderInfo) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a plain Exception for any unreadable file
        raise IndexCorrupt(f"{path}: unreadable tokenizer ({exc}); {_REBUILD}") from exc
    tokenizer.no_padding()  # padding is done per batch in `_run`
    # The length the model was trained to read, special tokens included, as sentence-transformers truncates.
    tokenizer.enable_truncation(max_length=info.max_length)
    return tokenizer


def _load_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # onnxruntime's pool spins for a moment after each encode (its default). Measured on 2 cores: single query
    # p50 4.8 ms spinning, 6.6 ms not, on a quiet machine; 18.3 ms and 9.2 ms beside another busy process. A
    # search service usually has its cores to itself, so the default stays; FAISS's OpenMP threads, which
    # gain nothing from spinning between searches, are told to sleep (see retriever/__init__.py).
    options.log_severity_level = 3  # warnings about unused initialisers are noise on every open
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise IndexCorrupt(f"{path}: unreadable ONNX graph ({exc}); {_REBUILD}") from exc
