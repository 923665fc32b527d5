"""Embed texts with tokenisation off the model's critical path: batch i+1 is tokenised while batch i runs.

`SentenceTransformer.encode` tokenises a batch on the calling thread and only then runs the forward pass,
so on a GPU the device idles while the CPU tokenises, and at Wikipedia scale (fp16 MiniLM at 20,000+
passages/s) tokenisation is a large share of each batch. Here one background thread tokenises ahead into
a bounded queue (`prefetch` batches, so memory stays flat however long the list) while the calling thread
feeds the model. Hugging Face fast tokenizers release the GIL inside batch encoding, so the two overlap;
only the background thread ever tokenises, because one tokenizer used by two threads raises "Already
borrowed".

The vectors are those of `model.encode(texts, batch_size=..., normalize_embeddings=True)` cast to
float32, bit for bit: the same length-sorted order and so the same batches and the same padding, the same
default prompt, truncation (`max_seq_length`), `truncate_dim` and normalisation, all taken from the model
rather than re-implemented. Where the installed sentence-transformers lacks the hooks this relies on
(before 6.x), or the model is set up for distributed inference, it falls back to `model.encode` itself:
slower, never different.

`retriever.model.Encoder.encode` uses it for anything longer than one batch (the build's shards); a
query, one batch, gains nothing from it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

Features = dict[str, Any]

# Vectors stay on the device until this many rows are pending: a device-to-host copy waits for the device,
# and doing it per batch (as encode does) would stall the queue of launched kernels every batch.
_FLUSH_ROWS = 16_384
# How often a blocked producer looks whether the consumer has given up.
_POLL_S = 0.05


@dataclass(frozen=True)
class _Failure:
    """An exception raised in the tokeniser thread, carried to the caller's thread to be raised there."""

    error: BaseException


_DONE = object()


def supports_pipelining(model: SentenceTransformer) -> bool:
    """Whether this model and sentence-transformers expose what `encode` itself uses (6.x), unchanged.

    Without these hooks the order, prompt or preprocessing could silently differ from `encode`'s, and
    vectors that differ from the ones a query is encoded with are worse than slow ones.
    """
    needed = ("preprocess", "_resolve_prompt", "_input_length", "_can_flatten_inputs", "_interleave_sorted_indices")
    return all(hasattr(model, name) for name in needed) and getattr(model, "_distributed_inference", None) is None


def encode_order(model: SentenceTransformer, texts: Sequence[str]) -> np.ndarray:
    """The positions of `texts` in the order `encode` batches them: longest first, by the model's own measure.

    The same (unstable) `np.argsort` call as `encode`, so ties fall the same way and every batch holds
    the same texts, hence the same padding and the same floating-point results.
    """
    order = np.argsort([-model._input_length(text) for text in texts])
    if model._can_flatten_inputs():
        order = model._interleave_sorted_indices(order)
    return order


def default_prompt(model: SentenceTransformer) -> str | None:
    """The prompt `encode` applies when given none (the model's `default_prompt_name`, usually none)."""
    return model._resolve_prompt(None, None)


def tokenize(model: SentenceTransformer, batch: Sequence[str], prompt: str | None) -> Features:
    """One batch's features exactly as `encode` makes them (prompt, padding, `max_seq_length` truncation)."""
    return model.preprocess(list(batch), prompt=prompt)


def embed_features(model: SentenceTransformer, features: Features, device: torch.device) -> torch.Tensor:
    """Unit vectors for one tokenised batch, left on `device` in the model's dtype, as `encode` computes them.

    Call under `torch.inference_mode()`. The forward pass goes through `model(...)`, as `encode` does, so
    a `model.compile()` or module hooks apply here too.
    """
    import torch

    # Pinned by the producer, so on CUDA the copy is queued and this thread goes on to launch the forward pass.
    non_blocking = device.type == "cuda"
    moved = {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v for k, v in features.items()
    }
    embeddings = model(moved)["sentence_embedding"]
    if model.truncate_dim is not None:
        embeddings = embeddings[..., : model.truncate_dim]
    return torch.nn.functional.normalize(embeddings, p=2, dim=1)


def encode_pipelined(model: SentenceTransformer, texts: list[str], batch_size: int, prefetch: int = 2) -> np.ndarray:
    """Unit-length float32 vectors for `texts`, in their order, equal to `model.encode`'s (see the module doc).

    `prefetch` is how many tokenised batches may wait for the model; two hide tokenisation as long as one
    batch tokenises faster than it runs. An empty list gives shape (0, dimension) rather than `encode`'s
    (0,), so callers can stack results without a special case.
    """
    import torch

    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if prefetch <= 0:
        raise ValueError(f"prefetch must be a positive integer, got {prefetch}")
    if not texts:
        return np.zeros((0, _dimension(model)), dtype=np.float32)
    if not supports_pipelining(model):
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    device = model._resolve_inference_device(None) if hasattr(model, "_resolve_inference_device") else model.device
    model.eval()  # as encode does: dropout off
    order = encode_order(model, texts)
    ordered = [texts[i] for i in order]
    batches = queue.Queue[Any](maxsize=prefetch)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce,
        args=(model, ordered, batch_size, default_prompt(model), device.type == "cuda", batches, stop),
        name="encode-tokenizer",
        daemon=True,  # never keeps the interpreter alive; the finally below joins it anyway
    )
    sorted_vectors: np.ndarray | None = None
    written = 0
    pending: list[torch.Tensor] = []
    pending_rows = 0
    producer.start()
    try:
        with torch.inference_mode():
            while True:
                item = batches.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                batch_vectors = embed_features(model, item, device)
                pending.append(batch_vectors)
                pending_rows += batch_vectors.shape[0]
                if pending_rows >= _FLUSH_ROWS:
                    sorted_vectors, written = _flush(pending, sorted_vectors, written, len(texts))
                    pending, pending_rows = [], 0
            if pending:
                sorted_vectors, written = _flush(pending, sorted_vectors, written, len(texts))
    finally:
        stop.set()  # a producer blocked on a full queue, or about to tokenise, gives up
        producer.join()
    if sorted_vectors is None or written != len(texts):
        raise RuntimeError(f"the model returned {written} vectors for {len(texts)} texts")
    result = np.empty_like(sorted_vectors)
    result[order] = sorted_vectors  # undo the length sort: row k of the sorted output is text order[k]
    return result


def _produce(
    model: SentenceTransformer,
    ordered: list[str],
    batch_size: int,
    prompt: str | None,
    pin: bool,
    batches: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    """Tokenise batches into `batches` until done, failed, or told to stop; the only thread that tokenises."""
    try:
        for start in range(0, len(ordered), batch_size):
            if stop.is_set():
                return
            features = tokenize(model, ordered[start : start + batch_size], prompt)
            if pin:
                features = _pinned(features)
            if not _put(batches, features, stop):
                return
        _put(batches, _DONE, stop)
    except BaseException as exc:  # everything, so the consumer never waits for a batch that will not come
        _put(batches, _Failure(exc), stop)


def _put(batches: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put `item`, waiting for room, unless the consumer stops first (then nobody would ever take it)."""
    while not stop.is_set():
        try:
            batches.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _pinned(features: Features) -> Features:
    """Page-locked copies of the tensors, so the host-to-device copy can be asynchronous."""
    import torch

    return {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in features.items()}


def _flush(
    pending: list[torch.Tensor], sorted_vectors: np.ndarray | None, written: int, total: int
) -> tuple[np.ndarray, int]:
    """Copy pending device vectors into the host array as float32 (exact from fp16), allocating it once."""
    import torch

    block = torch.cat(pending).float().cpu().numpy()
    if sorted_vectors is None:
        sorted_vectors = np.empty((total, block.shape[1]), dtype=np.float32)
    if written + len(block) > total:
        raise RuntimeError(f"the model returned more vectors than the {total} texts")
    sorted_vectors[written : written + len(block)] = block
    return sorted_vectors, written + len(block)


def _dimension(model: SentenceTransformer) -> int:
    """The width of one vector, for an empty result; `truncate_dim` narrows it as it narrows the vectors."""
    truncate_dim = getattr(model, "truncate_dim", None)
    if truncate_dim is not None:
        return int(truncate_dim)
    return embedding_dimension(model)


def embedding_dimension(model: SentenceTransformer) -> int:
    """The model's own word for its vectors' width (0 if it has none), under either name sentence-transformers
    has given the method."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter() or 0)
